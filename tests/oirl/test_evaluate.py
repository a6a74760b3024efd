"""Evaluation maths on hand-checked inputs, the splits, and one end-to-end run on the real logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oirl.embed import HashingBagOfWordsEmbedder, make_embedder
from oirl.evaluate import (
    best_single_index,
    chosen_outcomes,
    evaluate,
    normalise_question,
    oracle_outcomes,
    paired_bootstrap_ci,
    pgr,
    random_outcomes,
    render_table,
    split_logs,
)
from oirl.evaluate.report import plot_accuracy_vs_k

OUTCOMES = np.array([[1, 0, 0],
              [0, 0, 0],
              [1, 1, 0],
              [0, 1, 1]], dtype=float)


def test_outcome_baselines_by_hand():
    np.testing.assert_allclose(random_outcomes(OUTCOMES), [1 / 3, 0, 2 / 3, 2 / 3])
    np.testing.assert_array_equal(oracle_outcomes(OUTCOMES), [1, 0, 1, 1])
    assert best_single_index(OUTCOMES) == 0  # columns 0 and 1 both 0.5: first wins
    np.testing.assert_array_equal(chosen_outcomes(OUTCOMES, [0, 2, 1, 2]), [1, 0, 1, 1])


def test_pgr_by_hand():
    assert pgr(0.3, 0.2, 0.6) == pytest.approx(0.25)
    assert pgr(0.1, 0.2, 0.6) == pytest.approx(-0.25)
    assert pgr(0.5, 0.5, 0.5) is None  # no gap to recover


def test_paired_bootstrap_degenerate_and_known_cases():
    a = np.array([1, 0, 1, 1.0])
    assert paired_bootstrap_ci(a, a) == (0.0, 0.0)
    assert paired_bootstrap_ci(np.ones(5), np.zeros(5)) == (1.0, 1.0)
    # Differences +1 on half the queries, 0 elsewhere: the mean is 0.5 and the interval covers it.
    lo, hi = paired_bootstrap_ci(np.r_[np.ones(200), np.zeros(200)], np.zeros(400), n_boot=4000)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(2 * 1.96 * 0.5 / np.sqrt(400), abs=0.02)
    # Clustered: two groups of identical duplicates behave like 2 draws, not 400.
    groups = np.r_[np.zeros(200), np.ones(200)]
    lo, hi = paired_bootstrap_ci(np.r_[np.ones(200), np.zeros(200)], np.zeros(400), n_boot=4000, groups=groups)
    assert (lo, hi) == (0.0, 1.0)


def toy_logs(n_questions=60, seed=0) -> pd.DataFrame:
    """Benchmark-shaped logs: 6 prompts; duplicated questions (with case/space variants) across splits."""
    rng = np.random.default_rng(seed)
    rows, qi = [], 0
    for copy in range(2):
        for i in range(n_questions):
            kind = ("apple", "banana")[i % 2]
            text = f"{kind} question {i} about {kind}s"
            text = text.upper() if copy else text + "  "  # same question after normalisation
            split = "test" if (copy == 1 and i % 3 == 0) else "train"
            for p in range(6):
                good = (p % 2 == 0) == (kind == "apple")
                rows.append({"query_index": qi, "query": text, "prompt_index": p, "prompt": f"prompt number {p}: ",
                             "correct": bool(good and rng.random() < 0.8), "split": split})
            qi += 1
    return pd.DataFrame(rows)


def test_grouped_split_leaves_no_question_on_both_sides():
    logs = toy_logs()
    paper = split_logs(logs, "paper", list(range(6)))
    text = logs.drop_duplicates("query_index").set_index("query_index")["query"].map(normalise_question)
    assert set(text[paper.train_queries]) & set(text[paper.test_queries])  # the paper split leaks
    grouped = split_logs(logs, "grouped", list(range(6)), seed=3)
    assert not set(text[grouped.train_queries]) & set(text[grouped.test_queries])
    assert len(grouped.test_queries) > 0
    again = split_logs(logs, "grouped", list(range(6)), seed=3)
    np.testing.assert_array_equal(grouped.test_queries, again.test_queries)  # seeded
    with pytest.raises(ValueError, match="unknown protocol"):
        split_logs(logs, "leaky", [0])


def test_evaluate_end_to_end_on_toy_logs(tmp_path):
    logs = toy_logs()
    conf = pd.DataFrame(np.random.default_rng(0).random((logs["query_index"].max() + 1, 6)))
    report = evaluate(logs, HashingBagOfWordsEmbedder(32), dataset="toy", protocol="grouped", k=6,
                      confidence=conf, params={"n_rounds": 40, "min_data_in_leaf": 2}, n_boot=200)
    m = report["methods"]
    assert {"random", "botr_train", "botr_test", "llm_confidence", "prompt_oirl", "oracle"} <= set(m)
    assert m["random"]["accuracy"] <= m["oracle"]["accuracy"]
    assert m["prompt_oirl_argmax"]["accuracy"] > m["botr_train"]["accuracy"]  # the toy is learnable
    lo, hi = m["prompt_oirl"]["ci95_vs_botr"]
    assert lo <= hi and m["prompt_oirl"]["pgr"] is not None
    assert report["n_test"] > 0 and report["k"] == 6
    assert "Prompt-OIRL" in render_table(report)
    assert plot_accuracy_vs_k([report, report | {"k": 7}], tmp_path / "p.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="bad prompt list"):
        evaluate(logs, HashingBagOfWordsEmbedder(8), prompts=[0, 9])


@pytest.mark.realdata
@pytest.mark.slow
def test_real_mawps_train_and_evaluate(mirror_dir):
    """MAWPS, paper protocol, K = 6, real MiniLM embeddings, a cheap LightGBM configuration."""
    from oirl.datasets.benchmark import load_benchmark

    logs = load_benchmark("mawps", mirror_dir)
    report = evaluate(logs, make_embedder("all-MiniLM-L6-v2"), dataset="mawps", protocol="paper", k=6,
                      params={"n_rounds": 60}, n_boot=300)
    m = report["methods"]
    assert report["n_test"] == 1685
    assert m["botr_train"]["accuracy"] == pytest.approx(0.6457, abs=1e-3)
    assert m["oracle"]["accuracy"] == pytest.approx(0.8546, abs=1e-3)
    # On MAWPS the paper split leaks question text; Prompt-OIRL clearly beats BoTr there.
    assert m["prompt_oirl_argmax"]["ci95_vs_botr"][0] > 0
