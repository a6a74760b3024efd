"""Read and validate user prompting logs (CSV, JSONL, Parquet).

Columns: ``query, prompt`` and the outcome as ``correct`` (true/false/1/0) or ``reward``
(a number in [0, 1]); optionally ``task`` (or ``dataset``), ``llm``, ``split``,
``propensity`` (the probability that the logging policy chose this prompt, in (0, 1]),
``decision_id``, ``observation_id`` (the client's own id of the event) and ``logged_at``
(ISO 8601). Validation collects every problem with its row number instead of stopping at
the first, so a user can fix a file in one pass. ``correct`` accepts true/false/1/0 in any
case and nothing else: a silent "yes" -> False would poison a reward model.

The same query and prompt with different outcomes is not a contradiction: a sampled LLM
does exactly that, and each row is one observation.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from oirl.hashing import text_sha256

REQUIRED = ("query", "prompt")
OPTIONAL_DEFAULTS = {"llm": "unknown", "split": "train"}
TASK_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
TASK_RULE = "1-64 characters: lower-case letters, digits, '_', '.', '-', starting with a letter or digit"
COLUMNS = ["task", "external_key", "query", "prompt", "reward", "llm", "split", "propensity", "decision_id",
           "observation_id", "logged_at"]
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


def _parse_reward(value) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if 0.0 <= x <= 1.0 else None


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str)
                                                                                  and not value.strip())


def validate(table: pd.DataFrame, task: str | None = None) -> ValidatedLogs:
    """Check every row; keep the good ones in import shape, name the bad ones.

    ``task``: the task of rows without a ``task`` (or ``dataset``) column or value.
    """
    missing = [c for c in REQUIRED if c not in table.columns]
    if "correct" not in table.columns and "reward" not in table.columns:
        missing.append("correct (or reward)")
    if missing:
        raise LogFileError(
            f"missing required column(s): {', '.join(missing)}; found: {', '.join(map(str, table.columns)) or 'none'}"
        )
    task_column = "task" if "task" in table.columns else "dataset" if "dataset" in table.columns else None
    if task_column is None and task is None:
        raise LogFileError("which task are these logs for? add a `task` column or name one (--task NAME)")
    problems: list[RowProblem] = []
    good = []
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
        reward = None
        has_correct, has_reward = not _blank(rec.get("correct")), not _blank(rec.get("reward"))
        if has_correct:
            correct = _parse_correct(rec.get("correct"))
            if correct is None:
                reasons.append(f"correct must be one of true/false/1/0, got {rec.get('correct')!r}")
            else:
                reward = float(correct)
        if has_reward:
            r = _parse_reward(rec.get("reward"))
            if r is None:
                reasons.append(f"reward must be a number in [0, 1], got {rec.get('reward')!r}")
            elif reward is not None and r != reward:
                reasons.append(f"correct {rec.get('correct')!r} and reward {rec.get('reward')!r} disagree")
            else:
                reward = r
        if not has_correct and not has_reward:
            reasons.append("no outcome: give correct (true/false/1/0) or reward (0 to 1)")
        opt = {}
        for col, default in OPTIONAL_DEFAULTS.items():
            text = _as_text(rec.get(col))
            opt[col] = text.strip() if text and text.strip() else default
        row_task = _as_text(rec.get(task_column)) if task_column else None
        row_task = row_task.strip() if row_task and row_task.strip() else task
        if row_task is None:
            reasons.append("task is empty and no default task was named")
        elif not TASK_PATTERN.match(row_task):
            reasons.append(f"task {row_task[:80]!r} is not a valid name ({TASK_RULE})")
        if opt["split"] not in SPLITS:
            reasons.append(f"split must be train or test, got {opt['split']!r}")
        if len(opt["llm"]) > 128:
            reasons.append("llm is longer than 128 characters")
        propensity = None
        if not _blank(rec.get("propensity")):
            try:
                propensity = float(rec.get("propensity"))
            except (TypeError, ValueError):
                propensity = math.nan
            if not 0.0 < propensity <= 1.0:
                reasons.append(f"propensity must be a probability in (0, 1], got {rec.get('propensity')!r}")
        ids = {}
        for col in ("decision_id", "observation_id"):
            value = rec.get(col)
            ids[col] = None if _blank(value) else str(value).strip()
            if ids[col] is not None and len(ids[col]) > 64:
                reasons.append(f"{col} is longer than 64 characters")
        logged_at = None
        if not _blank(rec.get("logged_at")):
            try:
                logged_at = pd.Timestamp(rec.get("logged_at"))
                if pd.isna(logged_at):  # "NaT" parses as a missing time: a time was given, and it is not one
                    raise ValueError("not a time")
                logged_at = logged_at.tz_localize("UTC") if logged_at.tzinfo is None else logged_at.tz_convert("UTC")
            except (TypeError, ValueError):
                reasons.append(f"logged_at must be an ISO 8601 time, got {rec.get('logged_at')!r}")
        if reasons:
            problems.append(RowProblem(i, "; ".join(reasons)))
            continue
        good.append({"task": row_task, "external_key": text_sha256(query), "query": query, "prompt": prompt,
                     "reward": reward, "llm": opt["llm"], "split": opt["split"], "propensity": propensity,
                     "decision_id": ids["decision_id"], "observation_id": ids["observation_id"],
                     "logged_at": logged_at})
    return ValidatedLogs(pd.DataFrame(good, columns=COLUMNS), problems, total=len(records))


def read_feedback_file(path: Path) -> tuple[list, list[RowProblem]]:
    """Judgements of served decisions: ``decision_id`` and ``correct`` or ``reward`` per row.
    Returns the ``oirl.feedback.Feedback`` items and every bad row with its reason."""
    from oirl.feedback import Feedback

    table = read_table(path)
    if "decision_id" not in table.columns or not {"correct", "reward"} & set(table.columns):
        raise LogFileError(f"{path}: needs a decision_id column and a correct or reward column "
                           f"(found {', '.join(map(str, table.columns)) or 'none'})")
    items, problems = [], []
    for n, row in enumerate(table.to_dict("records"), start=1):
        did = _as_text(row.get("decision_id"))
        correct, reward = row.get("correct"), row.get("reward")
        has_correct, has_reward = not _blank(correct), not _blank(reward)
        if not did or not did.strip():
            problems.append(RowProblem(n, "decision_id is empty"))
        elif has_correct == has_reward:
            problems.append(RowProblem(n, "give exactly one of correct (true/false/1/0) or reward (0..1)"))
        elif has_correct and _parse_correct(correct) is None:
            problems.append(RowProblem(n, f"correct must be true/false/1/0, not {correct!r}"))
        elif has_reward and _parse_reward(reward) is None:
            problems.append(RowProblem(n, f"reward must be a number in [0, 1], not {reward!r}"))
        elif len(did) > 64:
            problems.append(RowProblem(n, "decision_id is longer than 64 characters"))
        else:
            items.append(Feedback(decision_id=did.strip(), correct=_parse_correct(correct) if has_correct else None,
                                  reward=_parse_reward(reward) if has_reward else None))
    return items, problems
