"""User log files: every bad row named, strict `correct`, three formats."""

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
    report = validate(table)
    assert report.rows.correct.tolist() == [True, False, True, False]
    assert [p.row for p in report.problems] == [5, 6]
    assert "got 'yes'" in str(report.problems[0])


def test_every_bad_row_is_named_with_its_reasons():
    table = pd.DataFrame({
        "query": ["ok", "", "ok2", "ok3"],
        "prompt": ["p", "p", "  ", "p"],
        "correct": ["true", "true", "maybe", "false"],
        "split": ["train", "train", "train", "validation"],
    })
    report = validate(table)
    reasons = {p.row: p.reason for p in report.problems}
    assert set(reasons) == {2, 3, 4}
    assert "query is empty" in reasons[2]
    assert "prompt is empty" in reasons[3] and "correct must be" in reasons[3]
    assert "split must be train or test" in reasons[4]
    assert report.total == 4 and len(report.rows) == 1


def test_contradicting_duplicates_are_rejected_but_exact_repeats_are_fine():
    table = pd.DataFrame({"query": ["q", "q", "q"], "prompt": ["p", "p", "p"], "correct": ["1", "1", "0"]})
    report = validate(table)
    assert [p.row for p in report.problems] == [3] and "contradicts row 1" in report.problems[0].reason


def test_missing_columns_reject_the_file():
    with pytest.raises(LogFileError, match="missing required column.*correct"):
        validate(pd.DataFrame({"query": ["q"], "prompt": ["p"]}))


def test_defaults_for_optional_columns():
    report = validate(pd.DataFrame({"query": ["q"], "prompt": ["p"], "correct": ["1"]}))
    row = report.rows.iloc[0]
    assert (row.llm, row.dataset, row.split) == ("unknown", "custom", "train")


def test_reads_csv_jsonl_parquet(tmp_path):
    frame = pd.DataFrame({"query": ["q1", "q2"], "prompt": ["p", "p"], "correct": ["true", "0"], "llm": ["m", "m"]})
    frame.to_csv(tmp_path / "a.csv", index=False)
    (tmp_path / "a.jsonl").write_text(
        "\n".join(json.dumps({"query": q, "prompt": "p", "correct": c}) for q, c in [("q1", True), ("q2", 0)])
    )
    frame.to_parquet(tmp_path / "a.parquet")
    for name in ("a.csv", "a.jsonl", "a.parquet"):
        report = validate(read_table(tmp_path / name))
        assert report.problems == [] and report.rows.correct.tolist() == [True, False], name


def test_unreadable_files_are_clear_errors(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"query": "q"}\n{not json\n')
    with pytest.raises(LogFileError, match="line 2: invalid JSON"):
        read_table(tmp_path / "bad.jsonl")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(LogFileError, match="unsupported file type"):
        read_table(tmp_path / "x.xlsx")
    with pytest.raises(LogFileError, match="no such file"):
        read_table(tmp_path / "nope.csv")
