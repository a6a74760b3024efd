"""Preference pairs (prompt, chosen, rejected) and the loaders that produce them.

Sources: a JSONL file with `prompt/chosen/rejected`; HH-RLHF transcripts; GSM8K LLaMA-2 responses
(a correct response preferred to an incorrect one for the same question); the Prompt-OIRL logs
(for a query, a prompt that led to a correct answer preferred to one that did not).
Splits group by `PreferencePair.group` (the prompt/question), so no test question is seen in training.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

ASSISTANT = "\n\nAssistant:"
HH_HARMLESS_TEST = "hh-rlhf/harmless-base/test.jsonl.gz"
REQUIRED = ("prompt", "chosen", "rejected")


class PreferenceDataError(ValueError):
    """The preference data cannot be used as given (empty, malformed, missing columns)."""


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    group: str = ""
    """what splits group by; empty means the prompt itself"""

    @property
    def group_key(self) -> str:
        return self.group or self.prompt


@dataclass
class CleanReport:
    kept: int = 0
    identical: int = 0
    empty: int = 0

    def __str__(self) -> str:
        return f"kept {self.kept} pairs, skipped {self.identical} with chosen == rejected, {self.empty} empty"


def clean_pairs(pairs: Iterable[PreferencePair]) -> tuple[list[PreferencePair], CleanReport]:
    """Drop pairs that carry no preference signal, and say how many: identical or empty responses."""
    kept, report = [], CleanReport()
    for p in pairs:
        if p.chosen == p.rejected:
            report.identical += 1
        elif not p.chosen.strip() or not p.rejected.strip():
            report.empty += 1
        else:
            kept.append(p)
    report.kept = len(kept)
    if report.identical or report.empty:
        log.warning("preference data: %s", report)
    return kept, report


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _read_jsonl(path: str | os.PathLike) -> list[tuple[int, dict]]:
    path = Path(path)
    if path.is_dir():
        raise PreferenceDataError(f"{path} is a directory; expected a JSONL file")
    if not path.is_file():
        raise PreferenceDataError(f"{path}: no such file")
    rows = []
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise PreferenceDataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise PreferenceDataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            rows.append((lineno, obj))
    if not rows:
        raise PreferenceDataError(f"{path}: the file is empty (no JSON lines)")
    return rows


def _require(path, lineno: int, obj: dict, keys: Iterable[str]) -> None:
    missing = [k for k in keys if k not in obj]
    if missing:
        raise PreferenceDataError(
            f"{path}:{lineno}: missing column(s) {', '.join(missing)}; found {', '.join(sorted(obj)) or 'none'}")
    wrong = [k for k in keys if not isinstance(obj[k], str)]
    if wrong:
        raise PreferenceDataError(f"{path}:{lineno}: column(s) {', '.join(wrong)} must be strings")


def load_jsonl_pairs(path: str | os.PathLike) -> list[PreferencePair]:
    """One JSON object per line with string fields `prompt`, `chosen`, `rejected` (optional `group`)."""
    pairs = []
    for lineno, obj in _read_jsonl(path):
        _require(path, lineno, obj, REQUIRED)
        pairs.append(PreferencePair(obj["prompt"], obj["chosen"], obj["rejected"], str(obj.get("group", ""))))
    return clean_pairs(pairs)[0]


def load_prompts(path: str | os.PathLike) -> list[str]:
    """Prompts for PPO/RAFT: the `prompt` field of each JSONL line (a pairs file works too)."""
    out = []
    for lineno, obj in _read_jsonl(path):
        _require(path, lineno, obj, ["prompt"])
        out.append(obj["prompt"])
    return out


def load_sft_examples(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(prompt, response) per JSONL line; the response is `response`, `completion`, or a pairs file's `chosen`."""
    out = []
    for lineno, obj in _read_jsonl(path):
        key = next((k for k in ("response", "completion", "chosen") if k in obj), "response")
        _require(path, lineno, obj, ["prompt", key])
        if obj[key].strip():
            out.append((obj["prompt"], obj[key]))
    if not out:
        raise PreferenceDataError(f"{path}: no example with a non-empty response")
    return out


def cap(items: list, n: int, seed: int) -> list:
    """At most `n` items, a seeded sample in the original order (n <= 0: all)."""
    if n <= 0 or len(items) <= n:
        return items
    keep = sorted(np.random.default_rng(seed).choice(len(items), n, replace=False))
    return [items[i] for i in keep]


def split_hh_transcript(chosen: str, rejected: str) -> PreferencePair:
    """Prompt = the shared prefix up to and including the last `\\n\\nAssistant:`; the rest are responses.

    A few transcripts differ before chosen's last `Assistant:` turn (e.g. a turn glued to the previous
    one without the separator); then we cut at the last `\\n\\nAssistant:` inside the common prefix,
    and failing that at the common prefix itself, so both responses are still true continuations.
    """
    k = chosen.rfind(ASSISTANT)
    if k >= 0 and rejected.startswith(chosen[: k + len(ASSISTANT)]):
        cut = k + len(ASSISTANT)
    else:
        common = os.path.commonprefix([chosen, rejected])
        k = common.rfind(ASSISTANT)
        cut = k + len(ASSISTANT) if k >= 0 else len(common)
    return PreferencePair(chosen[:cut], chosen[cut:], rejected[cut:])


def load_hh_rlhf(path: str | os.PathLike) -> list[PreferencePair]:
    """HH-RLHF file (`{"chosen": transcript, "rejected": transcript}` per line, optionally gzipped)."""
    pairs = []
    for lineno, obj in _read_jsonl(path):
        _require(path, lineno, obj, ["chosen", "rejected"])
        pairs.append(split_hh_transcript(obj["chosen"], obj["rejected"]))
    return clean_pairs(pairs)[0]


def _correct_vs_incorrect(df: pd.DataFrame, key: str, text: str, max_per_query: int | None,
                          seed: int) -> list[PreferencePair]:
    """Every (correct, incorrect) combination within a query, optionally subsampled per query."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _, g in df.groupby("query_index", sort=True):
        good = g.loc[g["correct"].astype(bool), text].tolist()
        bad = g.loc[~g["correct"].astype(bool), text].tolist()
        combos = [(a, b) for a in good for b in bad]
        if max_per_query is not None and len(combos) > max_per_query:
            combos = [combos[i] for i in sorted(rng.choice(len(combos), max_per_query, replace=False))]
        query = g["query"].iloc[0]
        pairs += [PreferencePair(query, a, b, group=query) for a, b in combos]
    return pairs


def gsm8k_response_pairs(responses: pd.DataFrame, max_per_query: int | None = None,
                         seed: int = 0) -> list[PreferencePair]:
    """From `load_gsm8k_responses` rows: prompt = question, chosen = a correct response, rejected = an
    incorrect one to the same question (from a different instruction prompt)."""
    _check_columns(responses, ["query_index", "query", "response", "correct"])
    return clean_pairs(_correct_vs_incorrect(responses, "query_index", "response", max_per_query, seed))[0]


def prompt_oirl_pairs(logs: pd.DataFrame, max_per_query: int | None = None,
                      seed: int = 0) -> list[PreferencePair]:
    """From `load_benchmark` rows: prompt = query, chosen = an instruction prompt that led to a correct
    answer, rejected = one that did not (the Prompt-OIRL action space as preference pairs)."""
    _check_columns(logs, ["query_index", "query", "prompt", "correct"])
    return clean_pairs(_correct_vs_incorrect(logs, "query_index", "prompt", max_per_query, seed))[0]


def _check_columns(df: pd.DataFrame, cols: list[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise PreferenceDataError(f"missing column(s) {', '.join(missing)}; found {', '.join(df.columns)}")
    if df.empty:
        raise PreferenceDataError("the table is empty")


def load_gsm8k_pairs(root: str | os.PathLike, max_per_query: int | None = None,
                     seed: int = 0) -> list[PreferencePair]:
    """Response-level pairs from the mirror directory `root` (through `oirl.datasets`)."""
    from oirl.datasets.benchmark import load_gsm8k_responses

    return gsm8k_response_pairs(load_gsm8k_responses(Path(root)), max_per_query, seed)


def load_prompt_oirl_pairs(dataset: str, root: str | os.PathLike, max_per_query: int | None = None,
                           seed: int = 0) -> list[PreferencePair]:
    """Prompt-level pairs for `dataset` in {gsm8k, svamp, mawps} from the mirror directory `root`."""
    from oirl.datasets.benchmark import load_benchmark

    return prompt_oirl_pairs(load_benchmark(dataset, Path(root)), max_per_query, seed)


def split_by_group(pairs: list[PreferencePair], test_fraction: float = 0.2,
                   seed: int = 0) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Train/test split over distinct groups (prompts/questions), never across one group."""
    return split_by_key(pairs, lambda p: p.group_key, test_fraction, seed)


def split_by_key(items: list, key, test_fraction: float = 0.2, seed: int = 0) -> tuple[list, list]:
    """Train/test split over the distinct values of `key(item)`, never across one value."""
    groups = sorted({key(p) for p in items})
    if len(groups) < 2:
        raise PreferenceDataError(f"need at least 2 distinct prompts to split, got {len(groups)}")
    order = np.random.default_rng(seed).permutation(len(groups))
    n_test = min(len(groups) - 1, max(1, round(test_fraction * len(groups))))
    test_groups = {groups[i] for i in order[:n_test]}
    train = [p for p in items if key(p) not in test_groups]
    test = [p for p in items if key(p) in test_groups]
    return train, test


def load_pairs(source: str, path: str | os.PathLike, max_per_query: int | None = None,
               seed: int = 0) -> list[PreferencePair]:
    """Dispatch on `source`: jsonl (a file), hh (a file), gsm8k (mirror dir), oirl-<dataset> (mirror dir)."""
    if source == "jsonl":
        return load_jsonl_pairs(path)
    if source == "hh":
        p = Path(path)
        return load_hh_rlhf(p / HH_HARMLESS_TEST if p.is_dir() else p)
    if source == "gsm8k":
        return load_gsm8k_pairs(path, max_per_query, seed)
    if source.startswith("oirl-"):
        return load_prompt_oirl_pairs(source.removeprefix("oirl-"), path, max_per_query, seed)
    raise PreferenceDataError(f"unknown data source {source!r}; use jsonl, hh, gsm8k or oirl-<gsm8k|svamp|mawps>")
