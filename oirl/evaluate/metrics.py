"""Metrics over per-query outcome matrices. Pure numpy; every function is hand-checkable.

An outcome matrix ``O`` is ``(n_queries, n_candidates)`` with O[i, j] = 1 if the LLM answered
query i correctly under candidate prompt j (a success rate in [0, 1] also works).
"""

from __future__ import annotations

import numpy as np


def chosen_outcomes(outcomes: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """Per-query outcome of the chosen candidate: ``O[i, choice[i]]``."""
    return outcomes[np.arange(len(outcomes)), np.asarray(choice)]


def random_outcomes(outcomes: np.ndarray) -> np.ndarray:
    """Expected per-query outcome of a uniformly random candidate (no sampling noise)."""
    return outcomes.mean(axis=1)


def oracle_outcomes(outcomes: np.ndarray) -> np.ndarray:
    """1 where any candidate was correct: the ceiling for any selection policy."""
    return outcomes.max(axis=1)


def best_single_index(outcomes: np.ndarray) -> int:
    """Column with the highest mean (first on ties): the best single prompt on these logs."""
    return int(np.argmax(outcomes.mean(axis=0)))


def pgr(accuracy: float, baseline: float, oracle: float) -> float | None:
    """Performance gap recovered: (acc − baseline) / (oracle − baseline); None if no gap exists."""
    gap = oracle - baseline
    if gap <= 1e-12:
        return None
    return (accuracy - baseline) / gap


def paired_bootstrap_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0,
                        groups: np.ndarray | None = None, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval for mean(a − b), resampling queries (or whole groups) with replacement.

    Pairing: a query's two outcomes are resampled together, so shared difficulty cancels.
    ``groups``: resample clusters (e.g. repeated question texts) instead of single rows,
    because duplicates of one question are not independent evidence.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size == 0:
        raise ValueError("no paired outcomes to bootstrap")
    rng = np.random.default_rng(seed)
    if groups is None:
        sums, counts = d, np.ones_like(d)
    else:
        codes = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
        sums = np.bincount(codes, d)
        counts = np.bincount(codes).astype(np.float64)
    n = len(sums)
    idx = rng.integers(0, n, size=(n_boot, n))  # (n_boot, n) cluster draws
    means = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)
