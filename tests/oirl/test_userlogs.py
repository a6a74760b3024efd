"""User log files: every bad row named, strict `correct`, rewards and propensities, three formats."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from oirl.datasets.userlogs import LogFileError, read_table, validate


def test_correct_accepts_only_true_false_one_zero_in_any_case():
    table = pd.DataFrame({
        "query": ["q1", "q2", "q3", "q4", "q5", "q6"],
        "prompt": ["p"] * 6,
        "correct": ["TRUE", "false", "1", "0", "yes", "2"],
    })
    report = validate(table, task="t")
    assert report.rows.reward.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert [p.row for p in report.problems] == [5, 6]
    assert "got 'yes'" in str(report.problems[0])


def test_every_bad_row_is_named_with_its_reasons():
    table = pd.DataFrame({
        "query": ["ok", "", "ok2", "ok3"],
        "prompt": ["p", "p", "  ", "p"],
        "correct": ["true", "true", "maybe", "false"],
        "split": ["train", "train", "train", "validation"],
    })
    report = validate(table, task="t")
    reasons = {p.row: p.reason for p in report.problems}
    assert set(reasons) == {2, 3, 4}
    assert "query is empty" in reasons[2]
    assert "prompt is empty" in reasons[3] and "correct must be" in reasons[3]
    assert "split must be train or test" in reasons[4]
    assert report.total == 4 and len(report.rows) == 1


def test_repeated_tries_with_different_outcomes_are_all_valid():
    """A sampled LLM answers the same query and prompt right, right, then wrong: three observations."""
    table = pd.DataFrame({"query": ["q", "q", "q"], "prompt": ["p", "p", "p"], "correct": ["1", "1", "0"]})
    report = validate(table, task="t")
    assert report.problems == [] and report.rows.reward.tolist() == [1.0, 1.0, 0.0]


def test_reward_propensity_ids_and_times():
    table = pd.DataFrame({
        "query": ["q1", "q2", "q3", "q4", "q5"], "prompt": ["p"] * 5,
        "reward": ["0.25", "1", "1.5", "", "0"], "correct": ["", "1", "", "", "1"],
        "propensity": ["0.5", "", "0.5", "0", "1"],
        "logged_at": ["2026-11-01T10:00:00+01:00", "", "yesterday", "", ""],
        "task": ["a", "b", "a", "a", "Bad Name"],
    })
    report = validate(table)
    reasons = {p.row: p.reason for p in report.problems}
    assert set(reasons) == {3, 4, 5}
    assert "reward must be a number in [0, 1]" in reasons[3] and "logged_at" in reasons[3]
    assert "no outcome" in reasons[4] and "propensity must be a probability" in reasons[4]
    assert "disagree" in reasons[5] and "not a valid name" in reasons[5]
    good = report.rows
    assert good.reward.tolist() == [0.25, 1.0] and good.task.tolist() == ["a", "b"]
    assert good.propensity.iloc[0] == 0.5 and str(good.logged_at.iloc[0]) == "2026-11-01 09:00:00+00:00"


def test_missing_columns_or_task_reject_the_file():
    with pytest.raises(LogFileError, match="missing required column.*correct"):
        validate(pd.DataFrame({"query": ["q"], "prompt": ["p"]}), task="t")
    with pytest.raises(LogFileError, match="which task"):
        validate(pd.DataFrame({"query": ["q"], "prompt": ["p"], "correct": ["1"]}))


def test_defaults_for_optional_columns():
    report = validate(pd.DataFrame({"query": ["q"], "prompt": ["p"], "correct": ["1"]}), task="t")
    row = report.rows.iloc[0]
    assert (row.llm, row.task, row.split, row.propensity) == ("unknown", "t", "train", None)


def test_reads_csv_jsonl_parquet(tmp_path):
    frame = pd.DataFrame({"query": ["q1", "q2"], "prompt": ["p", "p"], "correct": ["true", "0"], "llm": ["m", "m"]})
    frame.to_csv(tmp_path / "a.csv", index=False)
    (tmp_path / "a.jsonl").write_text(
        "\n".join(json.dumps({"query": q, "prompt": "p", "correct": c}) for q, c in [("q1", True), ("q2", 0)])
    )
    frame.to_parquet(tmp_path / "a.parquet")
    for name in ("a.csv", "a.jsonl", "a.parquet"):
        report = validate(read_table(tmp_path / name), task="t")
        assert report.problems == [] and report.rows.reward.tolist() == [1.0, 0.0], name


def test_unreadable_files_are_clear_errors(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"query": "q"}\n{not json\n')
    with pytest.raises(LogFileError, match="line 2: invalid JSON"):
        read_table(tmp_path / "bad.jsonl")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(LogFileError, match="unsupported file type"):
        read_table(tmp_path / "x.xlsx")
    with pytest.raises(LogFileError, match="no such file"):
        read_table(tmp_path / "nope.csv")
