"""Off-policy evaluation: the value of a target policy π from decisions logged by another policy μ.

Each logged decision i: a query x_i, the prompts A_i it could choose from, the prompt a_i the
logging policy μ served with probability p_i = μ(a_i | x_i), and the reward r_i it earned.
π(a | x_i) is the target policy's distribution and q̂(x_i, a) the reward model's estimate.

    w_i   = π(a_i | x_i) / p_i                                   importance weight
    IPS   = 1/n Σ_i w_i r_i                                      unbiased if p_i > 0 wherever π > 0
    SNIPS = Σ_i w_i r_i / Σ_i w_i                                 self-normalised: less variance, tiny bias
    DM    = 1/n Σ_i Σ_a π(a | x_i) q̂(x_i, a)                      no variance from w, all the model's bias
    DR    = DM + 1/n Σ_i w_i (r_i − q̂(x_i, a_i))                  unbiased if either p or q̂ is right
    ESS   = (Σ_i w_i)² / Σ_i w_i²                                 how many decisions the estimate is worth

Intervals: 95% percentile bootstrap over decisions (over whole query groups when given,
since repeated decisions on one query are not independent evidence). IPS, DM and DR are
means of per-decision terms (``terms``), so two policies compared on the same decisions
get a paired interval of their difference; SNIPS is a ratio and is re-computed per resample.
Arrays are dense ``(n, K)`` over a common prompt list; prompts outside A_i have π = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ESTIMATORS = ("ips", "snips", "dm", "dr")


@dataclass(frozen=True)
class LoggedDecisions:
    """n logged decisions over K prompts."""

    chosen: np.ndarray  # (n,) index of a_i
    reward: np.ndarray  # (n,) r_i in [0, 1]
    propensity: np.ndarray  # (n,) p_i = μ(a_i | x_i) > 0
    available: np.ndarray  # (n, K) bool: a ∈ A_i
    groups: np.ndarray | None = None  # (n,) query id: bootstrap resamples whole queries

    def __post_init__(self):
        n = len(self.chosen)
        if not (len(self.reward) == len(self.propensity) == self.available.shape[0] == n):
            raise ValueError("chosen, reward, propensity and available must have one row per decision")
        if n and (np.any(~(self.propensity > 0)) or np.any(self.propensity > 1 + 1e-9)):
            raise ValueError("propensities must be in (0, 1]")


def weights(logs: LoggedDecisions, target: np.ndarray) -> np.ndarray:
    """(n,) w_i = π(a_i | x_i) / p_i."""
    rows = np.arange(len(logs.chosen))
    return target[rows, logs.chosen] / logs.propensity


def terms(logs: LoggedDecisions, target: np.ndarray, q_hat: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per-decision terms whose means are IPS, DM and DR (DM and DR need ``q_hat``)."""
    rows = np.arange(len(logs.chosen))
    w = weights(logs, target)
    out = {"ips": w * logs.reward}
    if q_hat is not None:
        dm = (target * q_hat).sum(axis=1)
        out["dm"] = dm
        out["dr"] = dm + w * (logs.reward - q_hat[rows, logs.chosen])
    return out


def choice_terms(choice: np.ndarray, chosen: np.ndarray, reward: np.ndarray, propensity: np.ndarray,
                 q_hat: np.ndarray | None) -> np.ndarray:
    """(n,) per-decision DR terms of the deterministic policy choosing ``choice[i]`` on decision i:
    q̂_i(c_i) + 1[a_i = c_i] (r_i − q̂_i(a_i)) / p_i, which is ``terms``' DR with a one-hot target; with
    ``q_hat`` None, the IPS terms 1[a_i = c_i] r_i / p_i. The one doubly robust estimator of the gate
    (``oirl.evaluate.gate``) and of the safe policy's calibration (``oirl.select.policy``)."""
    hit = choice == chosen
    if q_hat is None:
        return np.where(hit, reward / propensity, 0.0)
    rows = np.arange(len(choice))
    return q_hat[rows, choice] + np.where(hit, (reward - q_hat[rows, chosen]) / propensity, 0.0)


def _snips(w: np.ndarray, r: np.ndarray) -> float:
    total = w.sum()
    return float((w * r).sum() / total) if total > 0 else float("nan")


def _resamples(logs: LoggedDecisions, n_boot: int, seed: int) -> list[np.ndarray]:
    """Index arrays of bootstrap resamples (whole groups when the logs have them)."""
    rng = np.random.default_rng(seed)
    n = len(logs.chosen)
    if logs.groups is None:
        return list(rng.integers(0, n, size=(n_boot, n)))
    codes = np.unique(logs.groups, return_inverse=True)[1].ravel()
    members = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes))[:-1])
    n_groups = len(members)
    return [np.concatenate([members[g] for g in rng.integers(0, n_groups, n_groups)]) for _ in range(n_boot)]


def estimate(logs: LoggedDecisions, target: np.ndarray, q_hat: np.ndarray | None = None,
             n_boot: int = 1000, seed: int = 0) -> dict:
    """Every estimator with its 95% interval, the effective sample size, and what could not be made."""
    target = np.asarray(target, dtype=np.float64)
    if target.shape != logs.available.shape:
        raise ValueError(f"target has shape {target.shape}, the logs {logs.available.shape}")
    n = len(logs.chosen)
    if n == 0:
        return {"n": 0, "estimates": {}, "unavailable": {e: "no logged decisions" for e in ESTIMATORS}}
    w = weights(logs, target)
    per = terms(logs, target, q_hat)
    idx = _resamples(logs, n_boot, seed)
    estimates = {}
    for name, t in per.items():
        boots = np.array([t[i].mean() for i in idx])
        estimates[name] = _summary(float(t.mean()), boots)
    boots = np.array([_snips(w[i], logs.reward[i]) for i in idx])
    estimates["snips"] = _summary(_snips(w, logs.reward), boots[~np.isnan(boots)])
    unavailable = {}
    if q_hat is None:
        unavailable = {e: "no reward model to estimate rewards with" for e in ("dm", "dr")}
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
    return {"n": n, "ess": ess, "estimates": {e: estimates[e] for e in ESTIMATORS if e in estimates},
            "unavailable": unavailable}


def _summary(value: float, boots: np.ndarray) -> dict:
    if len(boots) == 0:
        return {"value": value, "ci95": None}
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"value": value, "ci95": [float(lo), float(hi)]}


# ----------------------------------------------------------------------------- target policies
def deterministic(choice: np.ndarray, k: int) -> np.ndarray:
    """(n, K) one-hot π of a policy that picks ``choice[i]``."""
    pi = np.zeros((len(choice), k))
    pi[np.arange(len(choice)), choice] = 1.0
    return pi


def uniform(available: np.ndarray) -> np.ndarray:
    """(n, K) uniform over each decision's available prompts."""
    a = available.astype(np.float64)
    return a / a.sum(axis=1, keepdims=True)
