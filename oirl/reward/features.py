"""Pair features f(e(q), e(p)) fed to a reward-model backend.

``concat`` is the paper's choice, [e(q), e(p)]. Others are kept only if the quality
benchmark shows they help (see docs/core.md for the measurements).
"""

from __future__ import annotations

import numpy as np

FEATURE_SETS = ("concat", "concat+product", "concat+knn")


def check_feature_set(kind: str) -> None:
    if kind not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {kind!r}; choose one of {', '.join(FEATURE_SETS)}")


def embedding_part(kind: str) -> str:
    """The embedding-only part of a feature set (``concat+knn`` -> ``concat``)."""
    check_feature_set(kind)
    return kind.removesuffix("+knn")


def uses_neighbours(kind: str) -> bool:
    """``+knn``: add NeighbourMemory features (oirl.reward.neighbours), which need the training outcomes."""
    return kind.endswith("+knn")


def pair_features(query_emb: np.ndarray, prompt_emb: np.ndarray, kind: str = "concat") -> np.ndarray:
    """Row-aligned ``(n, d)`` query and prompt embeddings -> ``(n, F)`` float32 features.

    - ``concat``: [e(q), e(p)], F = 2d.
    - ``concat+product``: [e(q), e(p), e(q) * e(p)], F = 3d; the product lets a tree split
      on query-prompt agreement along one embedding axis directly.

    ``+knn`` sets return only their embedding part here; the model appends the neighbour features.
    """
    kind = embedding_part(kind)
    q = np.asarray(query_emb, dtype=np.float32)
    p = np.asarray(prompt_emb, dtype=np.float32)
    if q.shape != p.shape or q.ndim != 2:
        raise ValueError(f"query and prompt embeddings must both be (n, d); got {q.shape} and {p.shape}")
    parts = [q, p]
    if kind == "concat+product":
        parts.append(q * p)
    return np.concatenate(parts, axis=1)


def grid_features(query_emb: np.ndarray, prompt_embs: np.ndarray, kind: str = "concat") -> np.ndarray:
    """Every (query, prompt) pair: ``(n_q, d)`` x ``(n_p, d)`` -> ``(n_q * n_p, F)``, query-major."""
    n_q, n_p = len(query_emb), len(prompt_embs)
    q = np.repeat(np.asarray(query_emb, dtype=np.float32), n_p, axis=0)  # (n_q*n_p, d)
    p = np.tile(np.asarray(prompt_embs, dtype=np.float32), (n_q, 1))  # (n_q*n_p, d)
    return pair_features(q, p, kind)
