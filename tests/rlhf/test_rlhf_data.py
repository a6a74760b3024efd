"""Preference-pair loaders: formats, bad data, HH-RLHF prompt extraction, pairs from logs, grouped splits."""

import gzip
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from rlhf.data import (
    HH_HARMLESS_TEST,
    PreferenceDataError,
    PreferencePair,
    gsm8k_response_pairs,
    load_hh_rlhf,
    load_jsonl_pairs,
    load_pairs,
    load_prompts,
    prompt_oirl_pairs,
    split_by_group,
    split_hh_transcript,
)


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_pairs_and_identical_pairs_are_reported_and_skipped(tmp_path, caplog):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "q1", "chosen": "good", "rejected": "bad"},
        {"prompt": "q2", "chosen": "same", "rejected": "same"},
        {"prompt": "q3", "chosen": "fine", "rejected": "worse", "group": "g"},
    ])
    with caplog.at_level(logging.WARNING):
        pairs = load_jsonl_pairs(path)
    assert pairs == [PreferencePair("q1", "good", "bad"), PreferencePair("q3", "fine", "worse", "g")]
    assert "skipped 1 with chosen == rejected" in caplog.text
    assert load_prompts(path) == ["q1", "q2", "q3"]


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ("\n\n", "empty"),
    ('{"prompt": "q", "chosen": "a"}\n', "missing column(s) rejected"),
    ('{"prompt": "q", "chosen": "a", "rejected": 3}\n', "must be strings"),
    ('{"prompt": "q", "chosen": "a", "rejected": "b"}\nnot json\n', ":2: not valid JSON"),
    ("[1, 2]\n", "expected a JSON object"),
])
def test_bad_jsonl_gives_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(PreferenceDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_jsonl_pairs(path)


def test_missing_file(tmp_path):
    with pytest.raises(PreferenceDataError, match="no such file"):
        load_jsonl_pairs(tmp_path / "nope.jsonl")


def test_hh_prompt_is_shared_prefix_up_to_last_assistant():
    pre = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how to X?\n\nAssistant:"
    pair = split_hh_transcript(pre + " do Y", pre + " no")
    assert (pair.prompt, pair.chosen, pair.rejected) == (pre, " do Y", " no")


def test_hh_fallback_when_the_last_turn_is_glued():
    # chosen's last "\n\nAssistant:" lies beyond where the two transcripts diverge
    shared = "\n\nHuman: q\n\nAssistant:"
    chosen = shared + " No.  Human: then?\n\nAssistant: because"
    rejected = shared + " A drag king is the opposite."
    pair = split_hh_transcript(chosen, rejected)
    assert pair.prompt == shared
    assert pair.prompt + pair.chosen == chosen and pair.prompt + pair.rejected == rejected


def test_hh_fallback_without_any_assistant_in_common_prefix():
    pair = split_hh_transcript("abc x", "abc y")
    assert (pair.prompt, pair.chosen, pair.rejected) == ("abc ", "x", "y")


def test_hh_loader_reads_gzip(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    rows = [{"chosen": "\n\nHuman: q\n\nAssistant: yes", "rejected": "\n\nHuman: q\n\nAssistant: no"}] * 2
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    pairs = load_hh_rlhf(path)
    assert [p.chosen for p in pairs] == [" yes", " yes"] and pairs[0].prompt.endswith("Assistant:")


def test_gsm8k_response_pairs_prefer_correct_within_a_question():
    df = pd.DataFrame({
        "query_index": [0, 0, 0, 1, 1, 2], "query": ["A", "A", "A", "B", "B", "C"],
        "prompt_index": [0, 1, 2, 0, 1, 0], "response": ["r1", "r2", "r3", "s1", "s2", "t1"],
        "correct": [True, False, False, True, True, False], "split": "test",
    })
    pairs = gsm8k_response_pairs(df)
    assert {(p.prompt, p.chosen, p.rejected) for p in pairs} == {("A", "r1", "r2"), ("A", "r1", "r3")}
    assert len(gsm8k_response_pairs(df, max_per_query=1)) == 1
    with pytest.raises(PreferenceDataError, match="missing column"):
        gsm8k_response_pairs(df.drop(columns="response"))


def test_prompt_oirl_pairs():
    df = pd.DataFrame({
        "query_index": [5, 5, 5], "query": ["q"] * 3, "prompt_index": [0, 1, 2],
        "prompt": ["The answer is:", "Let's think step by step: ", "Imagine"], "correct": [False, True, True],
        "split": "train",
    })
    pairs = prompt_oirl_pairs(df)
    assert {(p.chosen, p.rejected) for p in pairs} == {("Let's think step by step: ", "The answer is:"),
                                                       ("Imagine", "The answer is:")}
    assert all(p.group_key == "q" for p in pairs)


def test_split_groups_never_straddle():
    pairs = [PreferencePair(f"q{i % 10}", f"c{i}", f"r{i}") for i in range(100)]
    train, test = split_by_group(pairs, 0.2, seed=0)
    assert len({p.prompt for p in test}) == 2 and len(train) + len(test) == 100
    assert not {p.prompt for p in train} & {p.prompt for p in test}
    assert split_by_group(pairs, 0.2, seed=0) == (train, test)
    assert split_by_group(pairs, 0.2, seed=1) != (train, test)


def test_unknown_source():
    with pytest.raises(PreferenceDataError, match="unknown data source"):
        load_pairs("csv", "x")


@pytest.mark.realdata
def test_real_hh_harmless(mirror):
    pairs = load_pairs("hh", mirror)
    assert 2300 <= len(pairs) <= 2312
    assert all(p.prompt.endswith("\n\nAssistant:") for p in pairs[:100])
    with gzip.open(Path(mirror) / HH_HARMLESS_TEST, "rt") as f:
        raw = [json.loads(line) for line in f]
    for r in raw:  # every split reassembles the original transcripts
        p = split_hh_transcript(r["chosen"], r["rejected"])
        assert p.prompt + p.chosen == r["chosen"] and p.prompt + p.rejected == r["rejected"]
    assert sum(split_hh_transcript(r["chosen"], r["rejected"]).prompt.endswith("Assistant:") for r in raw) >= 2307


@pytest.mark.realdata
def test_real_gsm8k_response_pairs(mirror):
    pairs = load_pairs("gsm8k", mirror, max_per_query=2)
    train, test = split_by_group(pairs, 0.2, seed=0)
    assert len(pairs) > 500
    assert not {p.prompt for p in train} & {p.prompt for p in test}
