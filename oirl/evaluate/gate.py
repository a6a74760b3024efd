"""The promotion gate's maths: a challenger and a champion judged on the same held-out queries.

Per held-out query q, the value of a policy that picks prompt c(q):
- full information (every candidate was logged on q): the mean logged reward of c(q);
- otherwise, if every observation of q carries its logging propensity μ: the doubly robust
  term mean_o [q̂(q, c(q)) + 1[p_o = c(q)] · (r_o − q̂(q, p_o)) / μ_o], unbiased for the same
  value whatever the reward model q̂ (``oirl.evaluate.ope``), and with far less variance than
  inverse propensity weighting alone when q̂ is decent;
- otherwise q says nothing about a policy's value and is not used.
The gate compares the two policies' mean value over the queries usable for both, with a
95% paired-bootstrap interval of the difference. With no usable query (partial logs without
propensities) it falls back to the reward models' held-out log loss, and says so. ``verdict``
turns the numbers into pass or refuse; a provisional champion (``is_provisional``) gets no benefit
of the doubt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from oirl.evaluate.metrics import paired_bootstrap_ci
from oirl.evaluate.ope import choice_terms

TOLERANCE = 1e-9  # means over a few hundred queries: equal within this is "not worse"


@dataclass
class HeldOutLogs:
    """Held-out observations arranged per query: the outcome grid and the raw observations."""

    queries: list[str]
    prompts: list[str]
    outcomes: np.ndarray  # (n_q, n_p) mean logged reward, NaN where not logged
    obs_query: np.ndarray  # (n_obs,) index into queries
    obs_prompt: np.ndarray  # (n_obs,) index into prompts
    obs_reward: np.ndarray  # (n_obs,)
    obs_propensity: np.ndarray  # (n_obs,) NaN where not logged

    @classmethod
    def from_logs(cls, logs: pd.DataFrame) -> HeldOutLogs:
        q_codes, queries = pd.factorize(logs["query"])
        p_codes, prompts = pd.factorize(logs["prompt"])
        reward = logs["reward" if "reward" in logs else "correct"].astype(float).to_numpy()
        prop = (logs["propensity"].astype(float).to_numpy() if "propensity" in logs
                else np.full(len(logs), np.nan))
        total = np.zeros((len(queries), len(prompts)))
        count = np.zeros_like(total)
        np.add.at(total, (q_codes, p_codes), reward)
        np.add.at(count, (q_codes, p_codes), 1)
        outcomes = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        return cls(list(queries), list(prompts), outcomes, q_codes, p_codes, reward, prop)

    def value_terms(self, choice: np.ndarray, q_hat: np.ndarray | None = None) -> np.ndarray:
        """(n_q,) per-query value of choosing prompt index ``choice[q]``; NaN where unusable.
        ``q_hat``: (n_q, n_p) reward-model estimates for the doubly robust terms (None: plain IPS)."""
        n_q = len(self.queries)
        full = ~np.isnan(self.outcomes).any(axis=1)
        terms = np.full(n_q, np.nan)
        terms[full] = self.outcomes[np.flatnonzero(full), choice[full]]
        # off-policy terms on queries whose every observation has a propensity
        has_prop = np.ones(n_q, bool)
        np.logical_and.at(has_prop, self.obs_query, ~np.isnan(self.obs_propensity))
        partial = ~full & has_prop
        if partial.any():
            obs = np.flatnonzero(partial[self.obs_query])
            query = self.obs_query[obs]
            w = choice_terms(choice[query], self.obs_prompt[obs], self.obs_reward[obs], self.obs_propensity[obs],
                             None if q_hat is None else q_hat[query])
            sums = np.bincount(query, w, n_q)
            counts = np.bincount(query, minlength=n_q).astype(float)
            terms[partial] = sums[partial] / counts[partial]
        return terms

    def method(self) -> str:
        full = ~np.isnan(self.outcomes).any(axis=1)
        return "full information" if full.all() else "full information + DR" if full.any() else "DR"

    def log_loss_terms(self, p_correct: np.ndarray) -> np.ndarray:
        """(n_q,) mean cross-entropy of predictions ``(n_q, n_p)`` on each query's observations."""
        p = np.clip(p_correct[self.obs_query, self.obs_prompt], 1e-7, 1 - 1e-7)
        y = self.obs_reward
        loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        return np.bincount(self.obs_query, loss, len(self.queries)) / np.bincount(self.obs_query,
                                                                                    minlength=len(self.queries))


def compare(ours: np.ndarray, theirs: np.ndarray | None, *, higher_is_better: bool, groups=None,
            seed: int = 0, n_boot: int = 2000) -> dict:
    """Mean of each, difference (ours − theirs) and its 95% paired-bootstrap interval."""
    out = {"challenger": float(np.mean(ours)), "champion": None, "difference": None, "ci95": None}
    if theirs is not None:
        lo, hi = paired_bootstrap_ci(ours, theirs, n_boot=n_boot, seed=seed, groups=groups)
        out.update(champion=float(np.mean(theirs)), difference=float(np.mean(ours) - np.mean(theirs)), ci95=[lo, hi])
        worse = out["difference"] < -TOLERANCE if higher_is_better else out["difference"] > TOLERANCE
        out["not_worse"] = not worse
        out["significantly_better"] = lo > 0 if higher_is_better else hi < 0  # the interval excludes "not better"
    return out


def is_provisional(metrics: dict) -> bool:
    """A champion is provisional until a gate showed it to be better than a champion that had earned
    its place: promoted with nothing to beat, promoted by force, or let past a provisional champion
    without a 95% interval of the difference that shows it better."""
    gate = (metrics or {}).get("gate") or {}
    return gate.get("verdict") != "pass" or bool(gate.get("provisional", False))


def verdict(gate: dict, has_champion: bool, min_queries: int, min_lower_bound: float,
            champion_provisional: bool = False) -> dict:
    """``{"verdict", "reason", "provisional"}`` for a gate's numbers: ``pass`` only with a champion to
    beat, enough held-out queries, a difference that is not negative and, where the values are
    off-policy (DR) estimates, a 95% lower bound of the difference no lower than ``min_lower_bound``.

    The lower bound protects a champion that earned its place. A provisional one (``is_provisional``:
    typically the first model, trained on a few cold-start rounds) has not: the unbiased point estimate
    decides, so a wrong first pick cannot lock itself in behind intervals that a few hundred held-out
    questions never make narrow. A challenger let in that way stays provisional unless its interval
    shows it significantly better."""
    if not has_champion:
        return {"verdict": "no_champion", "reason": "no champion to compare with", "provisional": True}
    n, metric = gate["n_queries"], gate["metric"]
    if n < min_queries:
        return {"verdict": "too_few_queries", "reason": f"judged on {n} held-out queries, fewer than the minimum "
                                                        f"{min_queries} (OIRL_GATE_MIN_QUERIES)", "provisional": True}
    numbers = f"{metric} {gate['challenger']:.4f} vs champion {gate['champion']:.4f} on {n} held-out queries"
    if not gate["not_worse"]:
        return {"verdict": "worse", "reason": numbers, "provisional": True}
    provisional = champion_provisional and not gate.get("significantly_better", False)
    if "DR" in gate.get("method", "") and gate["ci95"][0] < min_lower_bound:
        # Off-policy estimates are noisy: a point estimate that is not worse is not enough.
        bound = (f"the 95% lower bound of the difference, {gate['ci95'][0]:+.4f}, is below {min_lower_bound:+.4f} "
                 "(OIRL_GATE_MIN_LOWER_BOUND)")
        if not champion_provisional:
            return {"verdict": "worse", "reason": f"{numbers}, but {bound}", "provisional": True}
        return {"verdict": "pass", "provisional": True,
                "reason": f"{numbers}; {bound}, but the champion is provisional (it never beat an established "
                          "champion), so the point estimate decides"}
    still = "; still provisional: so was the champion, and the interval does not show it significantly better"
    return {"verdict": "pass", "reason": numbers + (still if provisional else ""), "provisional": provisional}
