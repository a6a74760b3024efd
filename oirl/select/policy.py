"""Best-of-N prompt selection with a calibrated, safe fallback. Pure functions over arrays.

best-of-N: π(q) = argmax_p r̂(q, p). The safe policy only departs from the default prompt
(the best prompt on the training logs, "BoTr") when the model is confident enough:

    margin(q) = max_p r̂(q, p) − r̂(q, default)
    π_safe(q) = argmax_p r̂(q, p)  if margin(q) >= τ  else  default          (fallback)

τ is chosen on held-out validation queries to maximise their logged accuracy; ties go to
the larger τ (the safer choice), and τ = +inf (always the default) is always a candidate,
so on validation data the safe policy is never worse than BoTr.

Equal scores never fall to the order of the candidate list (gradient-boosted trees tie
often: on GSM8K 44% of test queries had a tied top two). Among equal scores the default
prompt ranks first, then the others by the SHA-256 of their text: a fixed, arbitrary but
order-free rule, so permuting the candidates never changes a choice.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class BestOfN:
    """Results for a batch: n_q queries x n_c candidates."""

    scores: np.ndarray  # (n_q, n_c) P(correct)
    choice: np.ndarray  # (n_q,) chosen candidate index
    ranking: np.ndarray  # (n_q, n_c) candidate indices, best score first
    fallback: np.ndarray  # (n_q,) True where the default replaced a low-margin model choice
    margin: np.ndarray | None = None  # (n_q,) best score minus the default's (None without a default)

    @property
    def p_correct(self) -> np.ndarray:
        return self.scores[np.arange(len(self.choice)), self.choice]


def tie_order(candidates: Sequence[str]) -> np.ndarray:
    """Rank of each candidate text by its SHA-256: the order-free tie-break, ``(n_c,)``."""
    digests = [hashlib.sha256(t.encode("utf-8")).digest() for t in candidates]
    rank = np.empty(len(digests), dtype=np.int64)
    rank[sorted(range(len(digests)), key=digests.__getitem__)] = np.arange(len(digests))
    return rank


def rank_candidates(scores: np.ndarray, candidates: Sequence[str], default_index: int | None = None) -> np.ndarray:
    """``(n_q, n_c)`` candidate indices per query: higher score first; among equal scores the
    default first, then by ``tie_order``. Permuting ``candidates`` (and the score columns with
    them) permutes the indices and nothing else."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if len(candidates) != scores.shape[1]:
        raise ValueError(f"{len(candidates)} candidate texts for {scores.shape[1]} score columns")
    not_default = np.ones(scores.shape[1])
    if default_index is not None:
        not_default[default_index] = 0
    keys = (np.broadcast_to(tie_order(candidates), scores.shape), np.broadcast_to(not_default, scores.shape), -scores)
    return np.lexsort(keys, axis=-1)  # the last key sorts first


def best_of_n(scores: np.ndarray, candidates: Sequence[str], default_index: int | None = None,
              margin_threshold: float = 0.0, servable: np.ndarray | None = None) -> BestOfN:
    """Choose a candidate per query from a ``(n_q, n_c)`` score matrix over ``candidates`` (texts).

    ``default_index``: the fallback candidate (None: plain argmax, never a fallback).
    ``margin_threshold``: τ above; 0 means always trust the model, ``inf`` always the default.
    A default tied with the best score is chosen outright (it is not a fallback).
    ``servable``: ``(n_c,)`` bool, the candidates that may be chosen (still all ranked); the best
    servable one is the model's choice. None, or none servable: every candidate may be.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if scores.shape[1] == 0:
        raise ValueError("no candidates to choose from")
    if default_index is not None and not 0 <= default_index < scores.shape[1]:
        raise ValueError(f"default_index {default_index} outside 0..{scores.shape[1] - 1}")
    ranking = rank_candidates(scores, candidates, default_index)
    best = ranking[:, 0]
    if servable is not None and np.asarray(servable).any():
        allowed = np.asarray(servable, dtype=bool)[ranking]  # (n_q, n_c) in ranking order
        best = ranking[np.arange(len(ranking)), allowed.argmax(axis=1)]  # the first allowed in each row
    fallback = np.zeros(len(scores), dtype=bool)
    choice = best.copy()
    margin = None
    if default_index is not None:
        rows = np.arange(len(scores))
        margin = scores[rows, best] - scores[rows, default_index]
        fallback = (best != default_index) & (margin < margin_threshold)
        choice[fallback] = default_index
    return BestOfN(scores=scores, choice=choice, ranking=ranking, fallback=fallback, margin=margin)


@dataclass
class SelectionPolicy:
    """What the service needs besides the model: the default prompt and τ (JSON-serialisable)."""

    default_prompt: str
    """Text of the best prompt on the training logs."""
    default_train_accuracy: float
    """Its mean logged correctness on the training logs."""
    margin_threshold: float = 0.0
    """τ; ``math.inf`` means the model never overrides the default."""
    validation: dict = field(default_factory=dict)
    """Held-out numbers behind τ: n_queries, accuracy of default / model / safe policy."""
    known_prompts: list[str] = field(default_factory=list)
    """Prompt texts the model has observations of. Others are scored and ranked by their embedding
    alone, but served over a known prompt only on request (``allow_unseen``): a text no observation
    supports ("Reply only with the word banana: ") once outranked real prompts. Empty (a model made
    before this field): every candidate counts as known."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["margin_threshold"] = None if math.isinf(self.margin_threshold) else self.margin_threshold
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SelectionPolicy:
        d = dict(d)
        if d.get("margin_threshold") is None:
            d["margin_threshold"] = math.inf
        return cls(**d)

    def default_index_in(self, candidates: list[str]) -> int | None:
        """Where the default prompt sits among candidate texts (None: it is not a candidate)."""
        try:
            return candidates.index(self.default_prompt)
        except ValueError:
            return None


def fallback_reason(policy: SelectionPolicy | None, margin: float | None) -> str | None:
    """Why the safe default replaced the model's choice, in words shared by the CLI, the API and the
    console: either the model is never trusted (no τ was calibrated, and why), or this query's margin
    was below τ. None where there was no fallback to explain."""
    if policy is None or margin is None:
        return None
    if math.isinf(policy.margin_threshold):
        why = policy.validation.get("note")
        bound = policy.validation.get("gain_lower_bound")
        if why is None and bound is not None:
            level = policy.validation.get("level", 0.95)
            why = (f"on {policy.validation.get('n_queries')} calibration questions the {level:.0%} lower bound of "
                   f"the gain from trusting it was {bound:+.3f}, not above 0")
        return "the model is never trusted over the default prompt" + (f": {why}" if why else "")
    return f"the model's margin over the default prompt, {margin:.3f}, is below the calibrated τ = " \
           f"{policy.margin_threshold:.3f}"


def known_mask(policy: SelectionPolicy | None, candidates: Sequence[str]) -> np.ndarray:
    """``(n_c,)`` True for candidates the policy's model has observations of (all, if it does not say)."""
    if policy is None or not policy.known_prompts:
        return np.ones(len(candidates), dtype=bool)
    known = set(policy.known_prompts)
    return np.array([c in known for c in candidates], dtype=bool)


def apply_policy(scores: np.ndarray, candidates: Sequence[str], policy: SelectionPolicy | None,
                 allow_unseen: bool = False) -> BestOfN:
    """The served choice: best-of-N with the policy's default and τ (None: plain best-of-N), among the
    candidates the model has observations of unless ``allow_unseen``."""
    if policy is None:
        return best_of_n(scores, candidates)
    servable = None if allow_unseen else known_mask(policy, candidates)
    return best_of_n(scores, candidates, policy.default_index_in(list(candidates)), policy.margin_threshold,
                     servable)


def _scan_tau(margin: np.ndarray, gain: np.ndarray) -> tuple[float, int, float]:
    """τ maximising the summed gain of trusting the model where margin >= τ: (τ, queries trusted, gain).

    value(τ) = base + sum of gains over queries with margin >= τ; τ is scanned over the observed
    margins, cutting only between distinct ones (ties go to the same side), ties in value to the
    larger τ (the safer side); trusting none (τ = inf) is always a candidate."""
    order = np.argsort(-margin, kind="stable")
    cum_gain = np.concatenate([[0.0], np.cumsum(gain[order])])  # cum_gain[k]: trust the k largest margins
    m_sorted = margin[order]
    valid_k = np.concatenate([[True], m_sorted[:-1] > m_sorted[1:], [True]])
    k_best = max((k for k in range(len(margin) + 1) if valid_k[k]), key=lambda k: (round(cum_gain[k], 12), -k))
    tau = math.inf if k_best == 0 else float(m_sorted[k_best - 1])
    return tau, k_best, float(cum_gain[k_best])


def calibrate_margin(scores: np.ndarray, outcomes: np.ndarray, default_index: int,
                     candidates: Sequence[str]) -> tuple[float, dict]:
    """τ maximising mean outcome of the safe policy on validation queries.

    ``scores``/``outcomes``: (n_q, n_p) predictions and logged success rates over the prompt
    texts ``candidates``; queries with any NaN are skipped (the choice could not be scored:
    with partial logs that is every query, and τ = inf keeps the default). Returns (τ, summary).
    """
    ok = ~(np.isnan(scores).any(axis=1) | np.isnan(outcomes).any(axis=1))
    s, o = scores[ok], outcomes[ok]
    if len(s) == 0:
        return math.inf, {"n_queries": 0, "note": "no validation query has an outcome for every prompt (partial "
                                                  "logs); the policy keeps the default prompt"}
    rows = np.arange(len(s))
    best = rank_candidates(s, candidates, default_index)[:, 0]
    margin = s[rows, best] - s[rows, default_index]
    gain = o[rows, best] - o[rows, default_index]  # what trusting the model earns on each query
    tau, k_best, best_gain = _scan_tau(margin, gain)
    base = float(o[rows, default_index].mean())
    summary = {
        "n_queries": int(len(s)),
        "default_accuracy": base,
        "model_accuracy": float(o[rows, best].mean()),
        "safe_accuracy": base + best_gain / len(s),
        "share_trusting_model": float(k_best / len(s)),
    }
    return tau, summary


def calibrate_margin_offpolicy(scores: np.ndarray, obs_row: np.ndarray, obs_prompt: np.ndarray,
                               reward: np.ndarray, propensity: np.ndarray, default_index: int,
                               candidates: Sequence[str], level: float = 0.95, seed: int = 0,
                               estimator: str = "dr") -> tuple[float, dict]:
    """τ from partial logs: the same scan as ``calibrate_margin``, valuing a choice off-policy
    instead of by a full outcome grid, and only trusting the model when it pays.

    ``scores``: (n_q, n_p) held-out scores of every prompt on the validation queries; each
    observation o: its query row, prompt, reward and logging propensity μ_o. Per query q, the
    value of choosing c is

        IPS  v(q, c) = mean_o 1[p_o = c] r_o / μ_o
        DR   v(q, c) = r̂(q, c) + mean_o 1[p_o = c] (r_o − r̂(q, c)) / μ_o     (default)

    and the gain of trusting the model is v(q, best) − v(q, default). DR is as unbiased as IPS
    (the residual term corrects whatever the model's own scores claim) but its variance is that
    of the residuals, not of the rewards: with 6 prompts and μ ≈ 1/6 the IPS gain's noise hid
    real gains from the test below (with IPS gains, a 10,000-round run of the loop benchmark never
    left BoTr on SVAMP).
    The validation queries are split in two halves; the scan's τ on each half is judged on the
    other, and the scan's τ on all of them is kept only if the gain of trusting the model above the
    judged τ has a one-sided ``level`` lower bound (mean − z·SE; 0.95: z = 1.645) above zero over every question;
    else τ = inf. Picking and checking on the same noisy observations would trust a useless model
    one time in five.
    """
    n_q = scores.shape[0]
    counts = np.bincount(obs_row, minlength=n_q).astype(float)
    rows = np.flatnonzero(counts > 0)
    if len(rows) < 4:
        return math.inf, {"n_queries": int(len(rows)), "method": estimator,
                          "note": "too few validation observations with a propensity; the policy keeps the default"}
    best = rank_candidates(scores, candidates, default_index)[:, 0]
    margin = scores[np.arange(n_q), best] - scores[:, default_index]

    if estimator not in ("ips", "dr"):
        raise ValueError(f"estimator must be 'ips' or 'dr', not {estimator!r}")

    from oirl.evaluate.ope import choice_terms  # the gate's estimator too: one DR, written once

    def value(choice: np.ndarray) -> np.ndarray:  # (n_q,) per-query value of a per-query choice (0 unlogged)
        t = choice_terms(choice[obs_row], obs_prompt, reward, propensity,
                         scores[obs_row] if estimator == "dr" else None)
        return np.bincount(obs_row, t, n_q) / np.maximum(counts, 1)

    default_v = value(np.full(n_q, default_index))
    gain = value(best) - default_v
    # Cross-fitting: the τ scanned on each half is judged on the other, so every question tests a τ
    # chosen without it, and the test has all of them (one direction only, as before, tested on half
    # the questions: on the synthetic tasks with the heads backend it trusted no model in 2 of 4 runs at
    # 1,000 uniform rows and 4 of 4 at 3,000 epsilon-greedy rows; both directions: 0.52 / 0.65 / 0.43 of
    # the per-kind gain captured at 1,000 rows with out-of-fold scores, against 0 / 0.63 / 0 on the split).
    pick = np.random.default_rng(seed).permutation(rows)
    halves = np.sort(pick[: len(pick) // 2]), np.sort(pick[len(pick) // 2:])
    terms = np.zeros(n_q)
    for fit, judged in (halves, halves[::-1]):
        tau_half, _, _ = _scan_tau(margin[fit], gain[fit])
        terms[judged] = np.where(margin[judged] >= tau_half, gain[judged], 0.0)
    tau, _, _ = _scan_tau(margin[rows], gain[rows])  # what is served: the same scan on every question
    judged_terms = terms[rows]
    z = NormalDist().inv_cdf(level)
    lower = float(judged_terms.mean() - z * judged_terms.std(ddof=1) / math.sqrt(len(rows)))
    keep = math.isfinite(tau) and lower > 0
    trusted = margin[rows] >= tau if keep else np.zeros(len(rows), bool)
    summary = {"n_queries": int(len(rows)), "method": f"{estimator} (cross-fitted halves)",
               "default_value": float(default_v[rows].mean()), "model_value": float((default_v + gain)[rows].mean()),
               "safe_value": float((default_v[rows] + np.where(trusted, gain[rows], 0.0)).mean()),
               "gain_lower_bound": lower, "level": level, "share_trusting_model": float(trusted.mean())}
    return (tau if keep else math.inf), summary


def calibrate_policy(trained, offpolicy_estimator: str = "dr", level: float = 0.95) -> SelectionPolicy:
    """Policy for a ``TrainedRewardModel``: its BoTr default and τ from its validation grid, or, where the
    grid is partial and the logs carry propensities, off-policy (``calibrate_margin_offpolicy``)."""
    full = ~np.isnan(trained.validation_outcomes).any(axis=1)
    obs = trained.validation_logs
    # Mostly partial logs with propensities: value every validation query off-policy. A service's own
    # decisions fill a few questions' grids by chance (softmax on a repeated question): τ scanned on
    # those few alone was once picked on 4 queries of 139 (the loop benchmark, MAWPS).
    if obs is not None and len(obs) and (len(full) == 0 or full.mean() < 0.5):
        tau, summary = calibrate_margin_offpolicy(
            trained.validation_scores, obs["query_row"].to_numpy(), obs["prompt"].to_numpy(),
            obs["reward"].to_numpy(), obs["propensity"].to_numpy(), trained.default_index, trained.table.prompts,
            estimator=offpolicy_estimator, level=level)
    else:
        tau, summary = calibrate_margin(trained.validation_scores, trained.validation_outcomes,
                                        trained.default_index, trained.table.prompts)
    if getattr(trained, "default_evidence", None):
        summary = summary | {"default_prompt_evidence": trained.default_evidence}
    return SelectionPolicy(default_prompt=trained.default_prompt, default_train_accuracy=trained.default_train_accuracy,
                           margin_threshold=tau, validation=summary, known_prompts=list(trained.table.prompts))
