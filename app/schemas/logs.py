"""POST /v1/logs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from oirl.validation import DecisionId, FiniteFloat, LlmName, SafeText, SplitName, StrictInt, TaskName


class LogRowIn(BaseModel):
    """One observation: a query answered by an LLM with a prompt, and its outcome (the columns of
    ``oirl data import``)."""

    model_config = ConfigDict(extra="forbid")
    # Empty texts are refused by the import's own row checks (``oirl.datasets.userlogs``), which list
    # every bad row at once; the schema states the rule.
    query: SafeText = Field(json_schema_extra={"minLength": 1}, description="1 to OIRL_MAX_QUERY_CHARS characters.")
    prompt: SafeText = Field(json_schema_extra={"minLength": 1},
                             description="1 to OIRL_MAX_PROMPT_CHARS characters.")
    correct: bool | StrictInt | SafeText | None = Field(
        None, description="true/false, 1/0, or the strings true/false/1/0.")
    reward: FiniteFloat | None = Field(None, description="The outcome as a number in [0, 1] (instead of `correct`).")
    task: TaskName | None = Field(None, description="Default: the request's `task`.")
    llm: LlmName | None = Field(None, description="Default: unknown.")
    split: SplitName | None = Field(None, description="train or test (default train).")
    propensity: FiniteFloat | None = Field(
        None, description="P(the logging policy chose this prompt | query), in (0, 1].")
    decision_id: DecisionId | None = Field(None, description="The service decision this judges; the observation's key.")
    observation_id: SafeText | None = Field(None, max_length=256,
                                            description="Your id for this event; re-sending it adds nothing.")
    logged_at: SafeText | None = Field(None, max_length=64, description="When it happened (ISO 8601); part of the key.")


class LogsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: TaskName | None = Field(None, description="Task of rows that name none (default: OIRL_DEFAULT_TASK, or "
                                                     "the only task); created if new.")
    rows: list[LogRowIn] = Field(min_length=1, description="1 to OIRL_MAX_LOG_ROWS (default 10,000) observations. "
                                                           "Repeated tries of a query and prompt are separate "
                                                           "observations; re-sending the same rows adds nothing.")


class LogsImported(BaseModel):
    rows: int = Field(description="Rows received.")
    inserted: int = Field(description="New observations stored.")
    already_present: int = Field(description="Rows already in the store (re-sending is harmless).")
