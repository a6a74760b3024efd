"""The repeat ceiling: per-query selection's headroom, measured on repeated tries of the same query."""

from __future__ import annotations

import numpy as np
import pandas as pd

from oirl.evaluate.headroom import repeat_headroom

A, B = "Use method A: ", "Use method B: "


def grid_logs(n_texts: int, tries: int, effect: bool, seed: int = 0) -> pd.DataFrame:
    """Every try logs both prompts (the benchmark's shape); with ``effect`` each text suits one prompt."""
    rng = np.random.default_rng(seed)
    rows, row_id = [], 0
    for t in range(n_texts):
        suits_a = t % 2 == 0
        for _ in range(tries):
            for prompt in (A, B):
                p = (0.8 if (prompt == A) == suits_a else 0.2) if effect else 0.5
                rows.append({"query": f"question {t}", "query_id": row_id, "prompt": prompt,
                             "reward": float(rng.random() < p)})
            row_id += 1
    return pd.DataFrame(rows)


def test_a_per_text_effect_shows_as_headroom_and_none_as_none():
    strong = repeat_headroom(grid_logs(200, 4, effect=True), default_prompt=A)
    # half the texts suit B: picking it there gains 0.8 - 0.2 = 0.6 on half, about +0.3 overall
    assert 0.2 < strong["gain"] < 0.4 and strong["ci95"][0] > 0.15
    assert strong["n_texts"] == 200 and strong["n_held_out_tries"] == 800
    # no effect: the pick on other tries is independent of the held-out try, so no gain on average
    flat = [repeat_headroom(grid_logs(400, 4, effect=False, seed=s), default_prompt=A)["gain"] for s in range(5)]
    assert abs(np.mean(flat)) < 0.02


def test_one_prompt_per_try_is_judged_by_its_propensity():
    grid = grid_logs(300, 4, effect=True, seed=1)
    pick = np.random.default_rng(1).integers(0, 2, grid["query_id"].nunique())
    partial = grid[(grid["prompt"] == B).to_numpy() == pick[grid["query_id"].to_numpy()].astype(bool)]
    partial = partial.assign(propensity=0.5, query_id=partial["query"].factorize()[0])  # one query id per text
    h = repeat_headroom(partial, default_prompt=A)
    assert h["n_held_out_tries"] == len(partial) and h["ci95"][0] > 0


def test_without_repeats_it_says_so():
    once = grid_logs(50, 1, effect=True)
    assert repeat_headroom(once, A)["note"].startswith("no query was tried more than once")
    assert repeat_headroom(once, "never logged: ")["note"].startswith("the default prompt has no observation")


def test_the_order_of_the_logs_does_not_matter():
    logs = grid_logs(60, 3, effect=True, seed=2)
    shuffled = logs.sample(frac=1.0, random_state=0)
    assert repeat_headroom(logs, A)["gain"] == repeat_headroom(shuffled, A)["gain"]
