"""Headroom from repeated tries: how much can choosing a prompt per query gain on these logs at all?

The one-sample "oracle" (right if any prompt was right once) is mostly luck when the LLM samples:
on the benchmark (LLaMA-2 at temperature 0.6) it sits 0.2-0.25 above the best single prompt, while
picking per text from its other tries gains about +0.04. Where a query was tried more than once,
that second figure can be measured on the user's own logs:

    for each try t of a text with several tries:
        pick(t) = argmax_p  (Σ_{o ∉ t} r_o 1[p_o = p] + k·ḡ_p) / (n_{¬t,p} + k)      (other tries only)
        gain(t) = v_t(pick(t)) − v_t(default)

ḡ_p is prompt p's mean over all the logs and k = ``prior_strength`` pseudo-tries pull a prompt seen
once or twice on this text towards it (a single lucky try is not evidence). v_t(c), the value of
choosing c on the held-out try, is its logged outcome where the try holds several prompts (the
benchmark's rows; the pick is then among those, the default included), else inverse propensity
weighted, mean_o 1[p_o = c] r_o / μ_o, unbiased on one-prompt-per-query logs; tries with neither
are left out. A "try" is one logged
decision (an observation with a propensity); without propensities, the prompts of one query row
(the benchmark's), the n-th repeat of a prompt on a row making its n-th try.
The interval is a 95% bootstrap over texts (their tries are not independent).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from oirl.evaluate.metrics import paired_bootstrap_ci


def repeat_headroom(logs: pd.DataFrame, default_prompt: str, prior_strength: float = 1.0, n_boot: int = 2000,
                    seed: int = 0) -> dict:
    """``logs``: ``query``, ``prompt``, ``reward`` (or ``correct``), optionally ``query_id``, ``propensity``.
    Returns the gain of picking per text on its other tries over ``default_prompt``, on held-out tries."""
    from oirl.evaluate import normalise_question

    label = "reward" if "reward" in logs else "correct"
    df = pd.DataFrame({"text": logs["query"].map(normalise_question), "prompt": logs["prompt"],
                       "reward": logs[label].astype(float),
                       "propensity": logs["propensity"].astype(float) if "propensity" in logs else np.nan,
                       "row": logs["query_id"] if "query_id" in logs else np.arange(len(logs))})
    prompts = sorted(df["prompt"].unique())  # a fixed order, whatever the logs' order
    if default_prompt not in prompts:
        return {"n_texts": 0, "note": "the default prompt has no observation in these logs"}
    col = {p: j for j, p in enumerate(prompts)}
    df["p"] = df["prompt"].map(col)
    # A logged decision (it has a propensity) is one try; otherwise a query row's prompts form one try
    # and the n-th repeat of the same prompt on it belongs to its n-th try.
    repeat = df.groupby(["row", "p"]).cumcount().astype(str)
    df["try"] = np.where(df["propensity"].notna(), "o" + pd.Series(np.arange(len(df)), index=df.index).astype(str),
                         df["row"].astype(str) + "/" + repeat)
    df = df[df.groupby("text")["try"].transform("nunique") > 1]
    if df.empty:
        return {"n_texts": 0, "note": "no query was tried more than once: per-query headroom cannot be measured"}
    k = len(prompts)
    prior = np.bincount(df["p"], df["reward"], k) / np.maximum(np.bincount(df["p"], minlength=k), 1)
    d = col[default_prompt]
    # among equal estimates: the default first, then the sorted text order (never the logs' order)
    rank = np.arange(k, dtype=float) / (10 * k)
    rank[d] = -1.0
    gains, groups = [], []
    for g, (_, text_rows) in enumerate(df.groupby("text", sort=False)):
        hits = np.bincount(text_rows["p"], text_rows["reward"], k)
        tries = np.bincount(text_rows["p"], minlength=k).astype(float)
        for _, held in text_rows.groupby("try", sort=False):
            h_hits = np.bincount(held["p"], held["reward"], k)
            h_tries = np.bincount(held["p"], minlength=k).astype(float)
            estimate = (hits - h_hits + prior_strength * prior) / (tries - h_tries + prior_strength)
            if (h_tries > 0).sum() > 1:  # a grid (the benchmark's rows): choose among the prompts it logged
                if h_tries[d] == 0:
                    continue
                estimate = np.where(h_tries > 0, estimate, -np.inf)
                value = h_hits / np.maximum(h_tries, 1)
            elif held["propensity"].notna().all():
                value = np.bincount(held["p"], held["reward"] / held["propensity"], k) / len(held)
            else:
                continue
            pick = int(np.lexsort((rank, -estimate))[0])
            gains.append(value[pick] - value[d])
            groups.append(g)
    if not gains:
        return {"n_texts": 0, "note": "repeated queries carry neither every prompt nor propensities"}
    gains_arr, groups_arr = np.asarray(gains), np.asarray(groups)
    lo, hi = paired_bootstrap_ci(gains_arr, np.zeros_like(gains_arr), n_boot=n_boot, seed=seed, groups=groups_arr)
    return {"gain": float(gains_arr.mean()), "ci95": [lo, hi], "n_texts": int(len(np.unique(groups_arr))),
            "n_held_out_tries": int(len(gains_arr)), "default_prompt": default_prompt,
            "prior_strength": prior_strength,
            "what": "picking per query text from its other tries, scored on a held-out try, minus the default "
                    "prompt on the same try: the most per-query selection can gain where the LLM's answers vary "
                    "from try to try (unlike the one-sample oracle, which counts any lucky try)"}
