"""Input rules shared by every edge: the library's parameter dataclasses, the HTTP schemas, the CLI.

One place so a new field or route gets the same rules by naming a type, not by repeating checks:

- ``SafeText``: text a database and a tokenizer both accept (no lone UTF-16 surrogate, no NUL;
  PostgreSQL refuses NUL, the tokenizer and UTF-8 encoding refuse surrogates).
- ``NonEmptyText``: ``SafeText`` with at least one non-blank character.
- ``StrictInt``: a JSON integer; ``false`` or ``1.5`` or ``"3"`` is refused, not coerced.
- ``DbInt`` / ``DB_INT_MAX``: an id that fits the store's INTEGER columns (PostgreSQL: 32 bits).
- ``FiniteFloat``: a JSON number (an integer is fine, ``true`` or ``"0.5"`` is not), no NaN / Infinity
  (``1e999`` parses as Infinity); JSON columns cannot hold them.
- ``JsonObject``: free-form parameters (e.g. backend params): finite numbers, safe strings, bounded depth.
- ``UTCDateTime``: a datetime that always carries an offset (SQLite hands back naive UTC values).
- ``TaskName`` / ``LlmName`` / ``SplitName`` / ``DecisionId``: names bounded by the store's columns,
  so a name the store cannot hold is a 422 at every edge, never a row the decision log cannot write.
- ``check_length``: runtime limits that come from settings (query and prompt characters).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, Strict

DB_INT_MAX = 2**31 - 1  # INTEGER on PostgreSQL (and the ids SQLite hands out stay far below)
MAX_JSON_DEPTH = 16


def unsafe_text_reason(value: str) -> str | None:
    """Why ``value`` cannot be stored or embedded, or None if it can."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone UTF-16 surrogate (\\u{ord(value[exc.start]):04x}) at position {exc.start}"
    return None


def check_text(value: str) -> str:
    reason = unsafe_text_reason(value)
    if reason:
        raise ValueError(reason)
    return value


def check_not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value


def check_json(value: Any, depth: int = 0) -> Any:
    """Finite numbers, safe strings (keys too), at most ``MAX_JSON_DEPTH`` levels."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite (no NaN, Infinity or overflowing values like 1e999)")
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(str(k))
            check_json(v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            check_json(v, depth + 1)
    return value


def as_utc(value: datetime) -> datetime:
    # The store writes UTC; SQLite returns it without an offset. Naive means UTC here.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_length(value: str, limit: int, what: str, setting: str) -> str | None:
    """Why ``value`` breaks a configured length limit (None if it does not)."""
    if len(value) > limit:
        return f"{what} is {len(value):,} characters, over the limit of {limit:,} (OIRL_{setting})"
    return None


SafeText = Annotated[str, AfterValidator(check_text)]
NonEmptyText = Annotated[str, Field(min_length=1), AfterValidator(check_text), AfterValidator(check_not_blank)]
StrictInt = Annotated[int, Strict()]
DbInt = Annotated[int, Strict(), Field(ge=1, le=DB_INT_MAX)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False), Strict()]  # a JSON number: `true` is not 1.0
# The store's column widths (oirl.store.models): tasks.name 64, llm 128, split 16, decisions.id 64.
TASK_NAME_MAX, LLM_NAME_MAX, SPLIT_NAME_MAX, DECISION_ID_MAX = 64, 128, 16, 64
TaskName = Annotated[str, Field(min_length=1, max_length=TASK_NAME_MAX), AfterValidator(check_text)]
LlmName = Annotated[str, Field(min_length=1, max_length=LLM_NAME_MAX), AfterValidator(check_text)]
SplitName = Annotated[str, Field(min_length=1, max_length=SPLIT_NAME_MAX), AfterValidator(check_text)]
DecisionId = Annotated[str, Field(min_length=1, max_length=DECISION_ID_MAX), AfterValidator(check_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]
UTCDateTime = Annotated[datetime, AfterValidator(as_utc)]
