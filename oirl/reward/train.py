"""From observation logs (a DataFrame) to a fitted reward model and its selection policy.

Repeated observations of the same (query text, prompt text) are merged into at most two
weighted rows before training: a positive row weighing the summed reward and a negative
row weighing the summed (1 − reward). The weighted cross-entropy is exactly the same as
over the raw rows (soft rewards in [0, 1] included), but SVAMP's five-fold-overlapping logs
shrink about five-fold, and a query tried three times counts three times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from oirl.embed.base import Embedder
from oirl.reward.model import PromptRewardModel


def aggregate_outcomes(logs: pd.DataFrame, weight: np.ndarray | None = None) -> pd.DataFrame:
    """``query, prompt, reward`` (or ``correct``) rows -> one row per (query, prompt):
    ``n_correct`` (summed reward) and ``n_total`` (observations), each row counted ``weight`` times."""
    label = "reward" if "reward" in logs.columns else "correct"
    missing = {"query", "prompt", label} - set(logs.columns)
    if missing:
        raise ValueError(f"logs lack column(s) {sorted(missing)}; need query, prompt, reward (or correct)")
    if logs.empty:
        raise ValueError("no training rows: the logs are empty after filtering")
    w = np.ones(len(logs)) if weight is None else np.asarray(weight, dtype=np.float64)
    out = (logs.assign(_r=logs[label].astype(float).to_numpy() * w, _w=w)
           .groupby(["query", "prompt"], sort=False)[["_r", "_w"]].sum()
           .rename(columns={"_r": "n_correct", "_w": "n_total"}).reset_index())
    return out


def propensity_weights(logs: pd.DataFrame, clip: float) -> np.ndarray | None:
    """Inverse-propensity weights 1 / max(μ, clip), scaled to mean 1; None unless every row has a μ.

    A logging policy that favours some prompts on some queries over-represents those pairs;
    weighting each observation by 1/μ trains on the logs as if every prompt had been tried
    uniformly. Clipping bounds the variance (a weight is at most 1/clip before scaling)."""
    if "propensity" not in logs.columns or logs["propensity"].isna().any():
        return None
    w = 1.0 / np.maximum(logs["propensity"].to_numpy(dtype=np.float64), clip)
    return w / w.mean()


# BoTr on logs with propensities: per prompt the self-normalised IPS mean, each weight 1/max(μ, 0.05).
# Within one prompt the weights differ only where μ differs between queries (softmax exploration logs
# μ down to 0.0003): unclipped, a few lucky tries of a disfavoured prompt decided BoTr (in the loop
# benchmark a model took a prompt right 13% of the time as BoTr on MAWPS, and one run's final SVAMP
# logs ranked a 0.53 prompt above the 0.63 one); clipped at 0.05 the top prompt was the true one on
# all four final logs measured. The price: a small bias towards queries where the logger liked it.
BOTR_PROPENSITY_CLIP = 0.05

# On partial logs the safe policy trusts the model only where a doubly robust gain, checked on half of
# the calibration questions, has a 95% lower bound above zero. The 10% validation split gives it few
# questions (139-315 in the loop benchmark); out-of-fold scores (``calibration_folds`` K) put every
# training question in, for K more fits. Measured: on synthetic one-prompt-per-question logs with an
# informative model it turned 0% trust into 49% (tests/oirl/test_jobs.py); on the real benchmark's
# partial logs (benchmarks/results/partial_logs.md) and on four loop runs' final logs it trusted no
# model the split did not (median DR lower bound -0.02 either way), at 2.5-3x the training time.
# On the synthetic tasks of benchmarks/synthetic_tasks.py (1,000 rows logged uniformly, heads backend,
# 3 seeds) the served policy captured 0.52 / 0.65 / 0.43 of the per-kind oracle's gain with 5 folds
# against 0 / 0.63 / 0 on the split: a small team's logs are where the split has no power, so 5 folds
# are the default (only on partial logs with propensities; full-information logs never pay for them).
CALIBRATION_FOLDS = 5


def best_prompt_by_value(logs: pd.DataFrame) -> str:
    """BoTr: the prompt with the best mean reward, self-normalised IPS where every row has a propensity
    (``BOTR_PROPENSITY_CLIP``), else the plain mean; ties by text hash. Training's default prompt and
    the off-policy ``botr`` policy both use it."""
    table = botr_table(logs)
    return table.prompts[table.best_prompt()]


def botr_table(logs: pd.DataFrame) -> TrainingTable:
    """The outcomes BoTr is chosen on: self-normalised IPS weights 1/max(μ, BOTR_PROPENSITY_CLIP) where every
    row has a propensity, else unweighted."""
    return TrainingTable.from_logs(logs, propensity_weights(logs, BOTR_PROPENSITY_CLIP))


def default_prompt_evidence(logs: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> dict:
    """How sure the logs are of BoTr (``best_prompt_by_value``): each prompt's value and tries, the chance
    a bootstrap over questions picks the same best prompt, and the 95% interval of its lead over the
    runner-up. With a few hundred tries per prompt and gaps of a few points, BoTr is often another
    prompt than the truly best (benchmarks/synthetic_tasks.py, the "none" table at 1,000 rows)."""
    table = botr_table(logs)  # the same rule as best_prompt_by_value
    best = table.best_prompt()
    n_p, n_q = len(table.prompts), len(table.queries)
    value = table.prompt_success()
    tries = np.bincount(logs["prompt"].map({p: j for j, p in enumerate(table.prompts)}), minlength=n_p)
    out = {"prompt": table.prompts[best], "value": float(value[best]), "tries": int(tries[best])}
    if n_p < 2:
        return out
    runner = int(np.argsort(-np.where(np.arange(n_p) == best, -np.inf, value))[0])
    rng = np.random.default_rng(seed)
    leads, same = np.empty(n_boot), 0
    for b in range(n_boot):  # Poisson bootstrap over questions: every question's rows weigh w_q
        w = rng.poisson(1.0, n_q)[table.query_id]
        c = np.bincount(table.prompt_id, w * table.n_correct, n_p)
        t = np.bincount(table.prompt_id, w * table.n_total, n_p)
        rate = np.where(t > 0, c / np.maximum(t, 1e-12), -np.inf)
        same += int(np.argmax(rate) == best)
        leads[b] = rate[best] - rate[runner]
    lo, hi = (float(x) for x in np.percentile(leads[np.isfinite(leads)], [2.5, 97.5]))
    return out | {"runner_up": table.prompts[runner], "runner_up_value": float(value[runner]),
                  "runner_up_tries": int(tries[runner]), "lead": float(value[best] - value[runner]),
                  "lead_ci95": [lo, hi], "p_same_best": same / n_boot}


@dataclass
class TrainingTable:
    """Aggregated outcomes as arrays: text lists plus per-row indices into them."""

    queries: list[str]
    prompts: list[str]
    query_id: np.ndarray  # (n_pairs,) index into queries
    prompt_id: np.ndarray  # (n_pairs,) index into prompts
    n_correct: np.ndarray  # (n_pairs,)
    n_total: np.ndarray  # (n_pairs,)

    @classmethod
    def from_logs(cls, logs: pd.DataFrame, weight: np.ndarray | None = None) -> TrainingTable:
        agg = aggregate_outcomes(logs, weight)
        q_codes, queries = pd.factorize(agg["query"])
        p_codes, prompts = pd.factorize(agg["prompt"])
        return cls(list(queries), list(prompts), q_codes, p_codes,
                   agg["n_correct"].to_numpy(), agg["n_total"].to_numpy())

    def best_prompt(self) -> int:
        """Index of the prompt with the highest mean logged reward; ties by ``tie_order``, not log order."""
        from oirl.select.policy import tie_order

        success = self.prompt_success()
        best = np.flatnonzero(success == success.max())
        return int(best[np.argmin(tie_order([self.prompts[i] for i in best]))])

    def prompt_success(self) -> np.ndarray:
        """Mean logged correctness of each prompt, shape (n_prompts,)."""
        c = np.bincount(self.prompt_id, self.n_correct, len(self.prompts))
        t = np.bincount(self.prompt_id, self.n_total, len(self.prompts))
        return c / np.maximum(t, 1)

    def weighted_rows(self):
        """Each pair -> a positive row (weight n_correct) and a negative row (weight n_wrong), zero weights dropped.
        Returns (pair index, label, weight)."""
        pair = np.concatenate([np.arange(len(self.query_id))] * 2)
        label = np.concatenate([np.ones(len(self.query_id)), np.zeros(len(self.query_id))])
        weight = np.concatenate([self.n_correct, self.n_total - self.n_correct]).astype(np.float64)
        keep = weight > 0
        return pair[keep], label[keep], weight[keep]


@dataclass
class TrainedRewardModel:
    """A fitted model plus what the selection policy is calibrated from."""

    model: PromptRewardModel
    table: TrainingTable
    default_index: int
    """Index into ``table.prompts`` of the best prompt on the training logs (BoTr)."""
    validation_scores: np.ndarray
    """(n_val_queries, n_prompts) held-out P(correct) from the early-stopping model, for every prompt; with
    ``calibration_folds`` on partial logs with propensities, out-of-fold scores of every training question."""
    validation_outcomes: np.ndarray
    """(n_val_queries, n_prompts) logged success rate of each pair; NaN if not logged."""
    validation_logs: pd.DataFrame | None = None
    """The validation queries' observations that carry a propensity (``query_row`` indexes the grids):
    what calibrates the safe policy when the grids are partial."""
    default_evidence: dict | None = None
    """``default_prompt_evidence`` of the training logs: how sure they are of the default prompt."""

    @property
    def default_prompt(self) -> str:
        return self.table.prompts[self.default_index]

    @property
    def default_train_accuracy(self) -> float:
        return float(self.table.prompt_success()[self.default_index])


def fit_reward_model(logs: pd.DataFrame, embedder: Embedder, backend: str = "lightgbm",
                     params: dict | None = None, features: str = "concat+knn", random_state: int = 0,
                     propensity_clip: float | None = None, client=None,
                     calibration_folds: int = CALIBRATION_FOLDS) -> TrainedRewardModel:
    """Embed the texts (through the embedder's cache) and fit the model on the aggregated outcomes.

    Validation groups are distinct query texts, so duplicates of a held-out question never
    sit in the training part. ``oirl.select.calibrate_policy`` turns the result into a policy.
    ``propensity_clip``: weight each observation by 1/max(propensity, clip) (``propensity_weights``);
    None trains on the observations as they come. The default prompt (BoTr) is
    ``best_prompt_by_value``, whatever the training weights.
    ``calibration_folds``: on partial logs with propensities, calibrate on out-of-fold scores of every
    training question (``cross_fitted_scores``) instead of the 10% validation split; 0 (the default)
    never does.
    ``client``: a ``distributed.Client``: the backend trains on its cluster (``oirl.distributed``); embed on it
    too by passing a ``ClusterEmbedder``.
    """
    weight = propensity_weights(logs, propensity_clip) if propensity_clip is not None else None
    table = TrainingTable.from_logs(logs, weight)
    q_vec = embedder.encode(table.queries)  # (n_queries, d)
    p_vec = embedder.encode(table.prompts)  # (n_prompts, d)
    pair, label, w = table.weighted_rows()
    qid, pid = table.query_id[pair], table.prompt_id[pair]
    model = PromptRewardModel(backend=backend, params=params, features=features, random_state=random_state,
                              embedder=embedder.identity.to_dict(), client=client)
    model.fit(q_vec[qid], p_vec[pid], label, sample_weight=w, groups=qid)

    # The held-out predictions of the early-stopping model, on the validation questions.
    val = model.validation_mask_
    val_q = np.unique(qid[val])
    scores = np.full((len(val_q), len(table.prompts)), np.nan)
    scores[np.searchsorted(val_q, qid[val]), pid[val]] = model.validation_proba_
    if len(val_q) and np.isnan(scores).any():  # partial logs: the early-stopping model scores the rest
        scores = np.where(np.isnan(scores), model.validation_score(q_vec[val_q], p_vec), scores)
    model.probe_ = None  # not needed any more, and not saved
    calibration = CalibrationSet.on(table, logs, val_q, scores)
    if calibration_folds and calibration.partial_with_propensities():
        every = np.arange(len(table.queries))
        oof = cross_fitted_scores(model, q_vec, p_vec, qid, pid, label, w, calibration_folds, random_state)
        if not np.isnan(oof).any():  # more folds than questions leaves some unscored: keep the split
            calibration = CalibrationSet.on(table, logs, every, oof)
    evidence = default_prompt_evidence(logs, seed=random_state)
    default = table.prompts.index(evidence["prompt"])
    return TrainedRewardModel(model, table, default, calibration.scores, calibration.outcomes, calibration.logs,
                              evidence)


@dataclass
class CalibrationSet:
    """Questions to calibrate the safe policy on: their scores from a model that never saw them, the
    logged success rates, and their observations with a propensity."""

    scores: np.ndarray  # (n, n_prompts)
    outcomes: np.ndarray  # (n, n_prompts), NaN where not logged
    logs: pd.DataFrame | None  # query_row (into the grids), prompt, reward, propensity

    @classmethod
    def on(cls, table: TrainingTable, logs: pd.DataFrame, queries: np.ndarray, scores: np.ndarray) -> CalibrationSet:
        """``queries``: sorted indices into ``table.queries``; ``scores`` in that order."""
        row_of = np.full(len(table.queries), -1)
        row_of[queries] = np.arange(len(queries))
        outcomes = np.full_like(scores, np.nan)
        inside = row_of[table.query_id] >= 0
        outcomes[row_of[table.query_id[inside]], table.prompt_id[inside]] = (
            table.n_correct[inside] / table.n_total[inside])
        observed = None
        if "propensity" in logs.columns:
            query_row = logs["query"].map(dict(zip(table.queries, row_of, strict=True)))
            prompt_col = logs["prompt"].map({p: j for j, p in enumerate(table.prompts)})
            keep = (query_row >= 0) & logs["propensity"].notna()
            observed = pd.DataFrame({"query_row": query_row[keep].astype(int), "prompt": prompt_col[keep],
                                     "reward": logs.loc[keep, "reward" if "reward" in logs else "correct"]
                                     .astype(float), "propensity": logs.loc[keep, "propensity"].astype(float)})
        return cls(scores, outcomes, observed)

    def partial_with_propensities(self) -> bool:
        """The case ``calibrate_policy`` values off-policy: grids mostly partial, observations with μ."""
        full = ~np.isnan(self.outcomes).any(axis=1)
        return self.logs is not None and len(self.logs) > 0 and (len(full) == 0 or full.mean() < 0.5)


def cross_fitted_scores(model: PromptRewardModel, q_vec: np.ndarray, p_vec: np.ndarray, qid: np.ndarray,
                        pid: np.ndarray, label: np.ndarray, w: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """(n_queries, n_prompts) scores of every question by a model that never saw its outcomes: ``folds``
    models, each fitted on the other folds' questions with ``model``'s settings and its early-stopped
    number of rounds (no validation split of their own)."""
    n_q = int(q_vec.shape[0])
    fold = np.random.default_rng(seed).permutation(n_q) % folds
    scores = np.full((n_q, len(p_vec)), np.nan)
    params = {**(model.params or {}), "n_rounds": model.n_rounds_}
    for k in range(folds):
        rows = fold[qid] != k
        held = np.flatnonzero(fold == k)
        if not rows.any() or len(held) == 0:
            continue
        part = PromptRewardModel(backend=model.backend, params=params, features=model.features,
                                 validation_fraction=0.0, random_state=seed, knn=model.knn, client=model.client)
        part.fit(q_vec[qid[rows]], p_vec[pid[rows]], label[rows], sample_weight=w[rows], groups=qid[rows])
        scores[held] = part.score(q_vec[held], p_vec)
    return scores
