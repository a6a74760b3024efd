"""A tiny, learnable, query-dependent log shared by the reward and selection tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

FAST = {"n_rounds": 60, "min_data_in_leaf": 2, "early_stopping_rounds": 10}


def fruit_logs(n_per_kind=40, seed=0) -> pd.DataFrame:
    """Prompt A works on apple questions, prompt B on banana questions (with 10% label noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(2 * n_per_kind):
        kind = "apple" if i % 2 == 0 else "banana"
        q = f"{kind} question {i} about {kind}s and number {i}"
        for prompt, good in (("Use the apple method: ", "apple"), ("Use the banana method: ", "banana")):
            correct = (kind == good) != (rng.random() < 0.1)
            rows.append({"query_index": i, "query": q, "prompt_index": 0 if good == "apple" else 1,
                         "prompt": prompt, "correct": bool(correct), "split": "train"})
    return pd.DataFrame(rows)
