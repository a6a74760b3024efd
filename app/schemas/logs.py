"""POST /v1/logs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LogRowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str
    prompt: str
    correct: bool | int | str = Field(description="true/false, 1/0, or the strings true/false/1/0.")
    llm: str | None = Field(None, description="Default: unknown.")
    dataset: str | None = Field(None, description="Default: custom.")
    split: str | None = Field(None, description="train or test (default train).")


class LogsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[LogRowIn] = Field(description="1 to OIRL_MAX_LOG_ROWS (default 10,000) outcomes.")


class LogsImported(BaseModel):
    rows: int = Field(description="Rows received.")
    inserted: int = Field(description="New outcomes stored.")
    already_present: int = Field(description="Rows already in the store (re-sending is harmless).")
