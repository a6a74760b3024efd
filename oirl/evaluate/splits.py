"""Train/test splits of outcome logs: the published ``paper`` split and the honest ``grouped`` one.

``paper``: the ``split`` column as shipped (on SVAMP/MAWPS every test question text also
occurs in training, because the upstream cross-validation folds overlap).

``grouped``: distinct *normalised* question texts are the unit. A seeded random share of
them goes to test; every row of a test question is out of training, so no question is on
both sides. Test questions are drawn only among those with a logged outcome for every
candidate prompt (held-out prompts were logged on the paper's test queries only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

PROTOCOLS = ("paper", "grouped")
DEFAULT_TEST_FRACTION = 0.2  # grouped protocol on logs with no test split of their own
_SPACE = re.compile(r"\s+")


def normalise_question(text: str) -> str:
    """Lower case, single spaces, no surrounding space: the identity of a question."""
    return _SPACE.sub(" ", text).strip().lower()


@dataclass(frozen=True)
class Split:
    train_queries: np.ndarray  # query_index values usable for training
    test_queries: np.ndarray  # query_index values evaluated (every candidate logged)
    test_all: np.ndarray  # every query_index on the test side, complete or not (partial logs)


def candidate_complete_queries(logs: pd.DataFrame, candidates: list[int]) -> np.ndarray:
    """query_index values with an outcome logged for every candidate prompt index."""
    sub = logs[logs["prompt_index"].isin(candidates)]
    n = sub.groupby("query_index")["prompt_index"].nunique()
    return np.sort(n.index[n == len(set(candidates))].to_numpy())


def split_logs(logs: pd.DataFrame, protocol: str, candidates: list[int], seed: int = 0,
               test_fraction: float | None = None) -> Split:
    """Which queries train and which are tested, under ``protocol``.

    ``test_fraction`` (grouped only): share of distinct questions sent to test; default the
    paper split's share of test queries, so both protocols test on similar amounts.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    queries = logs.drop_duplicates("query_index")[["query_index", "query", "split"]]
    complete = candidate_complete_queries(logs, candidates)
    if protocol == "paper":
        test = queries.loc[queries["split"] == "test", "query_index"].to_numpy()
        train = queries.loc[queries["split"] == "train", "query_index"].to_numpy()
        if len(test) == 0:
            raise ValueError("the paper protocol needs logs marked split=test; these have none "
                             "(use the grouped protocol)")
        return Split(np.sort(train), np.intersect1d(test, complete), np.sort(test))

    group = queries["query"].map(normalise_question).to_numpy()
    if test_fraction is None:
        share = float((queries["split"] == "test").mean())
        test_fraction = share if share > 0 else DEFAULT_TEST_FRACTION
    all_groups = np.unique(group)
    eligible = np.unique(group[np.isin(queries["query_index"].to_numpy(), complete)])
    if len(eligible) == 0:  # partial logs: no question was tried with every candidate
        eligible = all_groups
    n_test = min(int(round(test_fraction * len(all_groups))), len(eligible))
    rng = np.random.default_rng(seed)
    test_groups = rng.choice(eligible, size=n_test, replace=False)  # `eligible` is sorted: seed-stable
    in_test = np.isin(group, test_groups)
    qidx = queries["query_index"].to_numpy()
    return Split(np.sort(qidx[~in_test]), np.intersect1d(qidx[in_test], complete), np.sort(qidx[in_test]))
