"""Best-of-N prompt selection with a calibrated fallback (pure functions; no HTTP, no SQL).

- ``best_of_n(scores, default_index, margin_threshold)`` over a ``(n_q, n_c)`` score matrix.
- ``select_prompts(model, embedder, queries, candidates, policy)`` embeds, scores and ranks a
  batch in one pass, returning plain dicts ready for an HTTP response.
- ``SelectionPolicy`` / ``calibrate_policy`` hold and fit the fallback rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oirl.select.policy import (
    BestOfN,
    SelectionPolicy,
    apply_policy,
    best_of_n,
    calibrate_margin,
    calibrate_policy,
    fallback_reason,
    known_mask,
    rank_candidates,
    tie_order,
)

__all__ = ["BestOfN", "SelectionPolicy", "apply_policy", "best_of_n", "calibrate_margin", "calibrate_policy",
           "fallback_reason", "known_mask", "rank_candidates", "select_prompts", "tie_order"]


def select_prompts(model, embedder, queries: Sequence[str], candidates: Sequence[str],
                   policy: SelectionPolicy | None = None, top_k: int | None = None,
                   candidate_embs: np.ndarray | None = None, allow_unseen: bool = False) -> list[dict]:
    """Rank ``candidates`` (prompt texts, seen or unseen) for every query in one scoring call.

    ``model``: a fitted ``PromptRewardModel``; ``embedder``: the one it was trained with
    (its identity must match the model's). ``candidate_embs`` may be passed to skip
    re-embedding a fixed registry. With a ``policy`` whose default prompt is among the
    candidates, low-margin choices fall back to it (``fallback: True``).

    Returns, per query: ``{"index", "prompt", "p_correct", "fallback", "ranking": [{"index",
    "prompt", "p_correct"}, ...]}`` (ranking best first, cut to ``top_k``).
    """
    candidates = list(candidates)
    if not candidates:
        raise ValueError("no candidate prompts")
    expected = model.embedder or {}
    got = embedder.identity
    if expected and (got.revision, got.dim) != (expected.get("revision"), expected.get("dim")):
        raise ValueError(f"embedder {got.key} (dim {got.dim}) differs from the model's {expected.get('name')}@"
                         f"{expected.get('revision')} (dim {expected.get('dim')}); scores would be meaningless")
    q_emb = embedder.encode(list(queries))  # (n_q, d)
    c_emb = embedder.encode(candidates) if candidate_embs is None else candidate_embs  # (n_c, d)
    result = apply_policy(model.score(q_emb, c_emb), candidates, policy, allow_unseen)
    seen = known_mask(policy, candidates)
    out = []
    for i in range(len(queries)):
        ranked = result.ranking[i][: top_k or len(candidates)]
        c = int(result.choice[i])
        out.append({
            "index": c,
            "prompt": candidates[c],
            "p_correct": float(result.scores[i, c]),
            "fallback": bool(result.fallback[i]),
            "fallback_reason": (fallback_reason(policy, float(result.margin[i])) if result.fallback[i] else None),
            "ranking": [{"index": int(j), "prompt": candidates[j], "p_correct": float(result.scores[i, j]),
                         "seen": bool(seen[j])} for j in ranked],
        })
    return out
