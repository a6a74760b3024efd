"""``evaluate(...)``: train on one side of a split, choose prompts on the other, compare methods.

Every method is scored on the same test queries, against the logged outcome of the prompt
it picks (no LLM call):

- ``random``: expected accuracy of a uniformly random candidate.
- ``botr_train``: the best single training prompt on the training logs ("BoTr"), the honest
  baseline every interval and PGR is measured against.
- ``botr_test``: the best single candidate on the *test* logs (optimistic; the reference code's BoTr).
- ``llm_confidence``: per query, the candidate whose answer the LLM itself was most confident in.
- ``prompt_oirl``: the default policy, best-of-N with the calibrated fallback to BoTr.
- ``prompt_oirl_argmax``: plain best-of-N (the paper's policy).
- ``oracle``: correct if any candidate was correct.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from oirl.evaluate.metrics import (
    best_single_index,
    chosen_outcomes,
    oracle_outcomes,
    paired_bootstrap_ci,
    pgr,
    random_outcomes,
)
from oirl.evaluate.splits import normalise_question, split_logs
from oirl.reward.train import fit_reward_model
from oirl.select.policy import apply_policy, best_of_n, calibrate_policy

TRAINING_PROMPTS = tuple(range(6))
HELD_OUT_PROMPTS = tuple(range(6, 16))
METHODS = ("random", "botr_train", "botr_test", "llm_confidence", "prompt_oirl", "prompt_oirl_argmax", "oracle")


def outcome_matrix(logs: pd.DataFrame, queries: np.ndarray, prompts: list[int]) -> np.ndarray:
    """(len(queries), len(prompts)) mean logged correctness; every pair must be logged."""
    sub = logs[logs["query_index"].isin(queries) & logs["prompt_index"].isin(prompts)]
    table = sub.pivot_table(index="query_index", columns="prompt_index", values="correct", aggfunc="mean")
    return table.reindex(index=queries, columns=prompts).to_numpy(dtype=np.float64)


def _one_subset(logs, embedder, split, train_prompts, candidates, backend, params, features, seed):
    """Per-query outcomes of every method for one choice of training prompts."""
    train_rows = logs[logs["query_index"].isin(split.train_queries) & logs["prompt_index"].isin(train_prompts)]
    test_q = split.test_queries
    outcomes = outcome_matrix(logs, test_q, candidates)  # (n_test, n_cand)
    trained = fit_reward_model(train_rows, embedder, backend=backend, params=params, features=features,
                               random_state=seed)
    policy = calibrate_policy(trained)
    text_of = logs.drop_duplicates("prompt_index").set_index("prompt_index")["prompt"]
    query_text = logs.drop_duplicates("query_index").set_index("query_index")["query"]
    texts = [text_of[c] for c in candidates]
    q_emb = embedder.encode(query_text.loc[test_q].tolist())
    c_emb = embedder.encode(texts)
    scores = trained.model.score(q_emb, c_emb)  # (n_test, n_cand)
    # BoTr is the policy's default (best on the training logs, order-free ties), so `safe` is
    # exactly the choice the service would serve.
    botr_col = texts.index(policy.default_prompt)
    botr_prompt = candidates[botr_col]
    safe = apply_policy(scores, texts, policy)
    argmax = best_of_n(scores, texts)
    per_query = {
        "random": random_outcomes(outcomes),
        "botr_train": outcomes[:, botr_col],
        "botr_test": outcomes[:, best_single_index(outcomes)],
        "prompt_oirl": chosen_outcomes(outcomes, safe.choice),
        "prompt_oirl_argmax": chosen_outcomes(outcomes, argmax.choice),
        "oracle": oracle_outcomes(outcomes),
    }
    info = {"train_prompts": list(train_prompts), "botr_prompt": botr_prompt,
            "botr_test_prompt": candidates[best_single_index(outcomes)], "policy": policy.to_dict(),
            "fallback_rate": float(safe.fallback.mean()), "n_train_rows": int(len(train_rows)),
            "n_rounds": trained.model.n_rounds_}
    return per_query, info, trained


def _confidence_outcomes(confidence: pd.DataFrame | None, test_q, candidates, outcomes) -> np.ndarray | None:
    if confidence is None:
        return None
    conf = confidence.reindex(index=test_q, columns=candidates).to_numpy(dtype=np.float64)
    if np.isnan(conf).any():
        return None  # only logged for some test queries or prompts: not comparable on the same queries
    return chosen_outcomes(outcomes, conf.argmax(axis=1))


def evaluate(logs: pd.DataFrame, embedder, *, dataset: str = "custom", protocol: str = "paper",
             k: int | None = None, prompts: list[int] | None = None, all_subsets: bool = False,
             held_out: bool = False, confidence: pd.DataFrame | None = None, backend: str = "lightgbm",
             params: dict | None = None, features: str = "concat+knn", seed: int = 0, n_boot: int = 2000,
             test_fraction: float | None = None, progress=None, keep_outcomes: bool = False) -> dict:
    """Run one evaluation and return the report dict (JSON-ready).

    ``logs``: rows like ``load_benchmark``'s output or ``oirl.jobs.data.store_logs``'s (columns
    ``query_index, query, prompt_index, prompt, correct, split``). Training prompts: ``prompts``
    if given; else, on benchmark logs (prompts 0-5 present), every K-subset of prompts 0-5
    (``all_subsets``, results averaged per query as the paper does) or the first K (default 6);
    on any other logs, every logged prompt. ``held_out`` (benchmark only): candidates at test
    time are the training prompts plus the 10 held-out prompts 6-15. ``confidence``: DataFrame
    indexed by query_index with prompt_index columns (LLM self-confidence), if available.
    ``progress``: optional callable(done, total) for long runs. ``keep_outcomes``: add each test
    query's Prompt-OIRL outcomes under ``outcomes`` (to compare two runs query by query, e.g. two
    encoders with a paired bootstrap).

    Where no test query has an outcome for every candidate (partial logs, e.g. one prompt per
    query), policies cannot be compared on logged outcomes: the report then says so in
    ``unavailable`` and gives what can be measured (the reward model's held-out log loss).
    """
    available = sorted(logs["prompt_index"].unique().tolist())
    benchmark = set(TRAINING_PROMPTS) <= set(available)
    pool = TRAINING_PROMPTS if benchmark else tuple(available)
    if held_out and not benchmark:
        raise ValueError("held_out applies to the benchmark tasks (prompts 6-15 held out); these logs are not one")
    if prompts is not None:
        bad = sorted(set(prompts) - set(available))
        if bad or len(set(prompts)) != len(prompts) or not prompts:
            raise ValueError(f"bad prompt list {prompts}: must be distinct indices among {available}")
        subsets = [tuple(prompts)]
    else:
        k = len(pool) if k is None else k
        if not 1 <= k <= len(pool):
            raise ValueError(f"k must be in 1..{len(pool)}, got {k}")
        subsets = list(combinations(pool, k)) if all_subsets else [pool[:k]]
    k = len(subsets[0])

    per_method: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    infos, test_q = [], None
    for n_done, subset in enumerate(subsets):
        candidates = list(subset) + ([p for p in HELD_OUT_PROMPTS if p not in subset] if held_out else [])
        split = split_logs(logs, protocol, candidates, seed=seed, test_fraction=test_fraction)
        if len(split.test_queries) == 0:
            return partial_report(logs, embedder, split, list(subset), dataset=dataset, protocol=protocol,
                                  backend=backend, params=params, features=features, seed=seed)
        per_query, info, _ = _one_subset(logs, embedder, split, list(subset), candidates, backend, params,
                                            features, seed)
        outcomes = outcome_matrix(logs, split.test_queries, candidates)
        per_query["llm_confidence"] = _confidence_outcomes(confidence, split.test_queries, candidates, outcomes)
        for m in METHODS:
            per_method[m].append(per_query[m])
        infos.append(info)
        test_q = split.test_queries  # the split does not depend on the subset for a fixed candidate count
        if progress:
            progress(n_done + 1, len(subsets))

    # Average each query's outcome over subsets, then compare per query (paired).
    mean = {m: (None if any(v is None for v in vs) else np.mean(vs, axis=0)) for m, vs in per_method.items()}
    query_text = logs.drop_duplicates("query_index").set_index("query_index").loc[test_q, "query"]
    groups = query_text.map(normalise_question).to_numpy()
    botr, oracle = float(mean["botr_train"].mean()), float(mean["oracle"].mean())
    methods: dict[str, dict] = {}
    for m in METHODS:
        if mean[m] is None:
            methods[m] = {"accuracy": None, "note": "LLM confidence not logged for every test query and candidate"}
            continue
        acc = float(mean[m].mean())
        entry = {"accuracy": acc}
        if m.startswith("prompt_oirl"):
            lo, hi = paired_bootstrap_ci(mean[m], mean["botr_train"], n_boot=n_boot, seed=seed, groups=groups)
            entry.update({"ci95_vs_botr": [lo, hi], "pgr": pgr(acc, botr, oracle),
                          "significant_vs_botr": "above" if lo > 0 else "below" if hi < 0 else "no"})
        methods[m] = entry
    methods["prompt_oirl"]["fallback_rate"] = float(np.mean([i["fallback_rate"] for i in infos]))
    outcomes = {"query_index": [int(q) for q in test_q], "groups": groups.tolist(),
                **{m: mean[m].tolist() for m in ("botr_train", "prompt_oirl_argmax", "prompt_oirl")}}
    return {
        "dataset": dataset,
        "information": "full",
        "protocol": protocol,
        "k": k,
        "held_out": held_out,
        "n_subsets": len(subsets),
        "n_test": int(len(test_q)),
        "n_test_questions": int(len(np.unique(groups))),
        "backend": backend,
        "features": features,
        "seed": seed,
        "embedder": embedder.identity.to_dict(),
        "methods": methods,
        "subsets": infos,
        **({"outcomes": outcomes} if keep_outcomes else {}),
    }


PARTIAL_LOGS = ("no test query has a logged outcome for every candidate prompt (partial logs, e.g. one prompt "
                "per query), so the accuracy of a policy cannot be read off the logs: random, BoTr, Prompt-OIRL "
                "and oracle accuracies are not reported. Where the logs carry propensities, the task's policies "
                "are compared off-policy below (IPS, SNIPS, DM, DR on the held-out decisions). Reported "
                "instead: the reward model's log loss on the held-out observations, next to the per-prompt "
                "base rate.")


def partial_report(logs: pd.DataFrame, embedder, split, train_prompts: list[int], *, dataset: str, protocol: str,
                   backend: str, params: dict | None, features: str, seed: int) -> dict:
    """What an evaluation can say on partial logs: held-out cross-entropy of r̂ against the base rate."""
    train_rows = logs[logs["query_index"].isin(split.train_queries) & logs["prompt_index"].isin(train_prompts)]
    test_rows = logs[logs["query_index"].isin(split.test_all) & logs["prompt_index"].isin(train_prompts)]
    report = {"dataset": dataset, "information": "partial", "protocol": protocol, "k": len(train_prompts),
              "n_test": 0, "n_test_observations": int(len(test_rows)), "backend": backend, "features": features,
              "seed": seed, "embedder": embedder.identity.to_dict(), "methods": {}, "unavailable": PARTIAL_LOGS}
    if train_rows.empty or test_rows.empty:
        report["unavailable"] += " There are no held-out observations either."
        return report
    trained = fit_reward_model(train_rows, embedder, backend=backend, params=params, features=features,
                               random_state=seed)
    y = test_rows["correct"].astype(float).to_numpy()
    q_emb = embedder.encode(test_rows["query"].tolist())
    p_emb = embedder.encode(test_rows["prompt"].tolist())
    p_model = trained.model.predict_proba(q_emb, p_emb)[:, 1]
    base = train_rows.groupby("prompt")["correct"].mean().astype(float)
    p_base = test_rows["prompt"].map(base).fillna(float(train_rows["correct"].astype(float).mean())).to_numpy()
    report["held_out_log_loss"] = {"reward_model": _log_loss(y, p_model), "prompt_base_rate": _log_loss(y, p_base),
                                   "n_observations": int(len(y)),
                                   "n_queries": int(test_rows["query_index"].nunique())}
    return report


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
