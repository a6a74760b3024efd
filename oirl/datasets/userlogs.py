"""Read and validate user prompting logs (CSV, JSONL, Parquet).

Columns: ``query, prompt, correct`` and optionally ``llm, dataset, split``. Validation
collects every problem with its row number instead of stopping at the first, so a user
can fix a file in one pass. ``correct`` accepts true/false/1/0 in any case and nothing
else: a silent "yes" -> False would poison a reward model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from oirl.hashing import text_sha256

REQUIRED = ("query", "prompt", "correct")
OPTIONAL_DEFAULTS = {"llm": "unknown", "dataset": "custom", "split": "train"}
SPLITS = ("train", "test")
TRUE_WORDS, FALSE_WORDS = {"true", "1"}, {"false", "0"}
MAX_TEXT = 100_000


class LogFileError(ValueError):
    """The file as a whole cannot be read (format, encoding, missing columns)."""


@dataclass(frozen=True)
class RowProblem:
    row: int  # 1-based data row, not counting a CSV header
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


@dataclass
class ValidatedLogs:
    """The good rows, ready for ``store.logs.import_outcomes``, and every bad row with its reason."""

    rows: pd.DataFrame
    problems: list[RowProblem] = field(default_factory=list)
    total: int = 0


def read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise LogFileError(f"{path}: no such file")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    try:
        if suffix in (".csv", ".csv.gz"):
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if suffix in (".jsonl", ".jsonl.gz", ".ndjson"):
            return _read_jsonl(path)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, ValueError) as exc:
        raise LogFileError(f"{path}: cannot be read as {suffix.lstrip('.')}: {exc}") from exc
    raise LogFileError(f"{path}: unsupported file type {suffix!r}; use .csv, .jsonl or .parquet")


def _read_jsonl(path: Path) -> pd.DataFrame:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    records = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LogFileError(f"{path} line {lineno}: invalid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise LogFileError(f"{path} line {lineno}: expected a JSON object, got {type(obj).__name__}")
            records.append(obj)
    return pd.DataFrame.from_records(records)


def _as_text(value) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return value if isinstance(value, str) else None


def _parse_correct(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


def validate(table: pd.DataFrame) -> ValidatedLogs:
    """Check every row; keep the good ones in import shape, name the bad ones."""
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise LogFileError(
            f"missing required column(s): {', '.join(missing)}; found: {', '.join(map(str, table.columns)) or 'none'}"
        )
    problems: list[RowProblem] = []
    good = []
    seen: dict[tuple[str, str, str, str], tuple[int, bool]] = {}
    records = table.to_dict("records")
    for i, rec in enumerate(records, start=1):
        reasons = []
        query, prompt = _as_text(rec.get("query")), _as_text(rec.get("prompt"))
        if query is None or not query.strip():
            reasons.append("query is empty")
        elif len(query) > MAX_TEXT:
            reasons.append(f"query is longer than {MAX_TEXT} characters")
        if prompt is None or not prompt.strip():
            reasons.append("prompt is empty")
        elif len(prompt) > MAX_TEXT:
            reasons.append(f"prompt is longer than {MAX_TEXT} characters")
        correct = _parse_correct(rec.get("correct"))
        if correct is None:
            reasons.append(f"correct must be one of true/false/1/0, got {rec.get('correct')!r}")
        opt = {}
        for col, default in OPTIONAL_DEFAULTS.items():
            raw = rec.get(col, default)
            text = _as_text(raw) if raw is not default else default
            opt[col] = text.strip() if text and text.strip() else default
        if opt["split"] not in SPLITS:
            reasons.append(f"split must be train or test, got {opt['split']!r}")
        for col in ("llm", "dataset"):
            if len(opt[col]) > 64:
                reasons.append(f"{col} is longer than 64 characters")
        if not reasons:
            key = (opt["dataset"], query, prompt, opt["llm"])
            if key in seen and seen[key][1] != correct:
                reasons.append(f"contradicts row {seen[key][0]} (same query, prompt and llm, other `correct`)")
            seen.setdefault(key, (i, correct))
        if reasons:
            problems.append(RowProblem(i, "; ".join(reasons)))
            continue
        good.append(
            {
                "dataset": opt["dataset"],
                "external_key": text_sha256(query),
                "query": query,
                "prompt": prompt,
                "correct": correct,
                "llm": opt["llm"],
                "split": opt["split"],
            }
        )
    columns = ["dataset", "external_key", "query", "prompt", "correct", "llm", "split"]
    return ValidatedLogs(pd.DataFrame(good, columns=columns), problems, total=len(records))
