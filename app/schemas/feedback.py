"""POST /v1/feedback and /v1/feedback/batch. One judgement is the library's ``Feedback``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from oirl.feedback import Feedback, Status


class FeedbackOut(BaseModel):
    decision_id: str
    status: Status = Field(description="recorded (stored now), already_recorded (the same judgement was stored "
                                       "before), unknown, expired or conflict (judged before with another value).")
    detail: str = ""


class FeedbackBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Feedback] = Field(min_length=1, description="1 to OIRL_MAX_LOG_ROWS judgements.")


class FeedbackBatchOut(BaseModel):
    results: list[FeedbackOut] = Field(description="One per item, in order.")
    recorded: int
    already_recorded: int
    refused: int = Field(description="Items that were unknown, expired or in conflict (nothing stored for them).")
