"""The shared input rules (oirl.validation) and error redaction (oirl.redact)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from oirl.jobs import EvaluationParams, RetrainParams
from oirl.redact import public_error, redact_paths
from oirl.tasks import TaskSpec
from oirl.validation import DbInt, JsonObject, NonEmptyText, SafeText, StrictInt, UTCDateTime


@pytest.mark.parametrize(("value", "words"), [("a\x00b", "NUL"), ("x \ud800", "surrogate"), ("\udfff", "position 0")])
def test_safe_text_refuses_what_a_store_or_tokenizer_cannot_take(value, words):
    with pytest.raises(ValidationError, match=words):
        TypeAdapter(SafeText).validate_python(value)


def test_safe_text_accepts_any_other_unicode():
    text = "naïve 数学 🙂 \u200b\t\n" + "\U0010ffff"
    assert TypeAdapter(SafeText).validate_python(text) == text


def test_non_empty_text_refuses_blank():
    for blank in ("", "  \n"):
        with pytest.raises(ValidationError):
            TypeAdapter(NonEmptyText).validate_python(blank)


def test_ints_are_strict_and_ids_fit_the_store():
    with pytest.raises(ValidationError):
        TypeAdapter(StrictInt).validate_python(False)
    with pytest.raises(ValidationError):
        TypeAdapter(StrictInt).validate_python("3")
    with pytest.raises(ValidationError):
        TypeAdapter(DbInt).validate_python(2**31)
    assert TypeAdapter(DbInt).validate_python(2**31 - 1) == 2**31 - 1


@pytest.mark.parametrize("bad", [{"a": float("nan")}, {"a": [1, float("inf")]}, {"a": {"b": "\x00"}},
                                 {"\ud800": 1}, {"a": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}])
def test_json_objects_hold_finite_numbers_and_safe_text(bad):
    with pytest.raises(ValidationError):
        TypeAdapter(JsonObject).validate_python(bad)


def test_library_params_use_the_shared_rules():
    with pytest.raises(ValidationError, match="seed"):
        RetrainParams(seed=False)
    with pytest.raises(ValidationError, match="finite"):
        RetrainParams(params={"learning_rate": float("inf")})
    with pytest.raises(ValidationError, match="NUL"):
        EvaluationParams(llm="a\x00")
    with pytest.raises(ValidationError, match="surrogate|unicode"):  # pydantic may refuse it first
        TaskSpec(name="t", prompts=["\ud800"])
    assert RetrainParams(seed=3, params={"num_leaves": 4}).seed == 3


def test_datetimes_come_out_in_utc():
    adapter = TypeAdapter(UTCDateTime)
    assert adapter.validate_python(datetime(2026, 1, 1, 12)).tzinfo == UTC  # SQLite's naive UTC
    plus2 = datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    assert adapter.validate_python(plus2) == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_server_paths_are_cut_from_client_text(tmp_path):
    home = tmp_path / "data"
    assert redact_paths(f"{home}/models/3: sha256 mismatch", [home]) == "…/models/3: sha256 mismatch"
    assert str(tmp_path) not in public_error(FileNotFoundError(f"{tmp_path}/x.txt"))
    assert redact_paths("POST /v1/tasks/x/prompts") == "POST /v1/tasks/x/prompts"  # routes are not paths


def test_a_database_error_reaches_a_client_without_its_sql_or_parameters(store):
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    with store() as s:
        try:
            s.execute(text("SELECT * FROM no_such_table WHERE secret = :p"), {"p": "hunter2"})
        except SQLAlchemyError as exc:
            shown = public_error(exc)
    assert shown.startswith("the store refused the job's query: ") and "no_such_table" in shown
    assert "SELECT" not in shown and "hunter2" not in shown and "[SQL" not in shown


def test_a_policy_past_the_store_version_range_is_refused_before_any_query():
    from pydantic import ValidationError

    from oirl.jobs import EvaluationParams

    with pytest.raises(ValidationError, match="no model version 2147483648"):
        EvaluationParams(policy="v2147483648")
    assert EvaluationParams(policy="v2147483647").policy == "v2147483647"
