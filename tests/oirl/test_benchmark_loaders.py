"""Loaders: exact parsing rules on tiny inputs, exact counts on the real logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oirl.datasets import benchmark
from oirl.datasets.benchmark import (
    PROMPTS,
    BenchmarkFormatError,
    _fill_numbers,
    load_benchmark,
    load_confidence,
    load_gsm8k_responses,
    read_correctness_log,
)


def test_placeholders_become_the_numbers_in_order():
    assert _fill_numbers("a number0 b number1 c number10", " ".join(str(i) for i in range(11))) == "a 0 b 1 c 10"
    with pytest.raises(BenchmarkFormatError, match="number2"):
        _fill_numbers("number2 apples", "1 2")


def test_correctness_log_parses_and_rejects_gaps(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark, "verify_file", lambda root, rel: Path(root) / rel)
    (tmp_path / "ok.txt").write_text("(0, True)\n(1, False)\n(2, True)\n")
    assert read_correctness_log(tmp_path, "ok.txt").tolist() == [True, False, True]
    (tmp_path / "gap.txt").write_text("(0, True)\n(2, False)\n")
    with pytest.raises(BenchmarkFormatError, match="line 2"):
        read_correctness_log(tmp_path, "gap.txt")
    (tmp_path / "bad.txt").write_text("(0, Maybe)\n")
    with pytest.raises(BenchmarkFormatError, match="line 1"):
        read_correctness_log(tmp_path, "bad.txt")


def test_sixteen_prompts_six_for_training():
    assert len(PROMPTS) == 16 and [p.index for p in PROMPTS] == list(range(16))
    assert [p.alias for p in PROMPTS if not p.held_out] == ["nan", "CoT", "APE", "Dis", "ToT", "Decomp"]
    assert PROMPTS[1].text == "Let's think step by step: "  # trailing space is part of the prompt
    assert PROMPTS[2].text.startswith("Let\u2019s work")  # typographic apostrophe, as logged


@pytest.mark.realdata
@pytest.mark.parametrize(
    "dataset,n_train,n_test,best_test",
    [("gsm8k", 7473, 1000, 0.248), ("svamp", 15000, 4690, 0.637), ("mawps", 6000, 1685, 0.646)],
)
def test_real_logs_counts_and_best_prompt(mirror_dir, dataset, n_train, n_test, best_test):
    df = load_benchmark(dataset, mirror_dir)
    train, test = df[df.split == "train"], df[df.split == "test"]
    assert len(train) == 6 * n_train and len(test) == 16 * n_test
    assert train.query_index.nunique() == n_train and test.query_index.nunique() == n_test
    assert set(train.prompt_index) == set(range(6)) and set(test.prompt_index) == set(range(16))
    # The best training prompt's test accuracy is DESIGN.md's "best single prompt (on test)".
    per_prompt = test[test.prompt_index < 6].groupby("prompt_index").correct.mean()
    assert per_prompt.max() == pytest.approx(best_test, abs=0.0005)
    assert "number0" not in " ".join(df["query"].head(2000))


@pytest.mark.realdata
def test_real_confidence_and_responses(mirror_dir):
    conf = load_confidence("svamp", mirror_dir)
    assert conf.shape == (4690, 16) and not np.isnan(conf[:, :6]).any()
    responses = load_gsm8k_responses(mirror_dir)
    assert (responses.split == "test").sum() == 16 * 1000 and (responses.split == "train").sum() == 7473
    assert responses.response.str.len().min() > 0
