"""Retraining: logged training rows -> a challenger version, judged on a held-out split.

1. Read the training-split logs from the store (optionally one dataset / LLM).
2. Hold out a seeded share of distinct *question texts* (no question on both sides).
3. Fit the reward model on the rest and calibrate its safe policy (``oirl.reward``,
   ``oirl.select``), then score the challenger *and the current champion* on the same
   held-out queries: mean logged correctness of the prompt each policy picks.
4. Save, register as a new version (alias ``challenger``), recording the comparison in
   ``metrics["gate"]``; promotion later checks it.
The version is registered only at the very end and atomically, so a crash midway leaves
no trace in the registry.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from oirl.jobs.data import store_logs
from oirl.jobs.runner import JobError, json_safe
from oirl.registry import ModelRegistry
from oirl.registry.live import LoadedModel
from oirl.store.registry_repo import CHALLENGER


@dataclass
class RetrainParams:
    dataset: str | None = None
    """Only this dataset's logs (None: every dataset)."""
    llm: str | None = None
    """Only this LLM's logs (None: every LLM)."""
    backend: str = "lightgbm"
    params: dict | None = None
    """Backend parameters overriding its defaults."""
    features: str = "concat+knn"
    """Pair features; the library default, as measured in benchmarks/results/quality.md."""
    holdout_fraction: float = 0.2
    """Share of distinct questions held out to judge the challenger against the champion."""
    max_queries: int | None = None
    """Subsample this many distinct questions first (speed; None: all)."""
    seed: int = 0


def holdout_split(logs: pd.DataFrame, fraction: float, seed: int, max_queries: int | None):
    from oirl.evaluate import normalise_question

    groups = logs["query"].map(normalise_question)
    unique = np.sort(groups.unique())
    rng = np.random.default_rng(seed)
    if max_queries is not None and len(unique) > max_queries:
        unique = np.sort(rng.choice(unique, size=max_queries, replace=False))
    n_hold = int(round(fraction * len(unique)))
    if n_hold < 1 or n_hold >= len(unique):
        raise JobError(f"{len(unique)} distinct questions cannot be split with holdout_fraction={fraction}")
    held = set(rng.choice(unique, size=n_hold, replace=False).tolist())
    used = set(unique.tolist())
    in_hold = groups.isin(held).to_numpy()
    in_used = groups.isin(used).to_numpy()
    return logs[in_used & ~in_hold], logs[in_hold]


def holdout_accuracy(loaded_model, policy, embedder, holdout: pd.DataFrame) -> dict:
    """Accuracy of the policy's pick among the prompts logged for each held-out query."""
    from oirl.reward import TrainingTable
    from oirl.select import best_of_n

    table = TrainingTable.from_logs(holdout)
    outcomes = np.full((len(table.queries), len(table.prompts)), np.nan)
    outcomes[table.query_id, table.prompt_id] = table.n_correct / table.n_total
    complete = ~np.isnan(outcomes).any(axis=1)  # queries where every prompt was logged
    if not complete.any():
        raise JobError("no held-out query has an outcome for every prompt; cannot compare models")
    queries = [q for q, keep in zip(table.queries, complete, strict=True) if keep]
    obs = outcomes[complete]  # (n_q, n_p)
    scores = loaded_model.score(embedder.encode(queries), embedder.encode(table.prompts))
    default = policy.default_index_in(table.prompts) if policy is not None else None
    tau = policy.margin_threshold if policy is not None else 0.0
    pick = best_of_n(scores, default, tau)
    rows = np.arange(len(obs))
    y = obs.ravel()
    p = np.clip(scores.ravel(), 1e-7, 1 - 1e-7)
    return {
        "n_queries": int(len(obs)),
        "accuracy": float(obs[rows, pick.choice].mean()),
        "argmax_accuracy": float(obs[rows, scores.argmax(axis=1)].mean()),
        "default_prompt_accuracy": float(obs[:, default].mean()) if default is not None else None,
        "oracle_accuracy": float(obs.max(axis=1).mean()),
        "log_loss": float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()),
        "fallback_rate": float(pick.fallback.mean()),
    }


def retrain(factory, registry: ModelRegistry, embedder, params: RetrainParams, champion: LoadedModel | None = None,
            job_id: str | None = None, progress=lambda f: None, alias: str | None = CHALLENGER):
    """Train, judge against ``champion`` on the same held-out split, register. Returns (VersionInfo, metrics)."""
    from oirl.reward import fit_reward_model
    from oirl.select import calibrate_policy

    logs = store_logs(factory, dataset=params.dataset, llm=params.llm, split="train")
    if logs.empty:
        raise JobError(f"no training logs in the store for dataset={params.dataset!r}, llm={params.llm!r}")
    train, hold = holdout_split(logs, params.holdout_fraction, params.seed, params.max_queries)
    progress(0.1)
    try:
        trained = fit_reward_model(train, embedder, backend=params.backend, params=params.params,
                                   features=params.features, random_state=params.seed)
    except ValueError as exc:  # bad backend/params/features: the user's mistake, not a crash
        raise JobError(str(exc)) from exc
    policy = calibrate_policy(trained)
    progress(0.7)
    ours = holdout_accuracy(trained.model, policy, embedder, hold)
    theirs = None
    if champion is not None and champion.info.embedder_revision == embedder.identity.revision:
        theirs = holdout_accuracy(champion.model, champion.policy, embedder, hold)
    progress(0.85)
    split_id = hashlib.sha256("\n".join(sorted(hold["query"].unique())).encode()).hexdigest()[:16]
    metrics = {
        "holdout": ours,
        "validation": policy.validation,
        "gate": {"split": split_id, "accuracy": ours["accuracy"],
                 "champion_version": champion.version if theirs is not None else None,
                 "champion_accuracy": theirs["accuracy"] if theirs is not None else None,
                 "champion_holdout": theirs},
    }
    snapshot = {
        "source": "store", "split": "train", "dataset": params.dataset, "llm": params.llm,
        "n_rows": int(len(logs)), "n_train_rows": int(len(train)), "n_holdout_rows": int(len(hold)),
        "max_query_id": int(logs["query_id"].max()), "holdout_split": split_id,
        "retrain_params": asdict(params),
    }
    with tempfile.TemporaryDirectory(prefix="oirl-train-") as tmp:
        out = Path(tmp) / "model"
        trained.model.save(out, metrics=metrics, extra={"policy": policy.to_dict()})
        info = registry.register(out, metrics=json_safe(metrics), data_snapshot=snapshot, job_id=job_id,
                                 alias=alias)
    progress(1.0)
    return info, metrics
