"""Answers of POST /v1/evaluations. The request bodies of POST /admin/retrain and POST /v1/evaluations
are the library's own ``RetrainParams`` and ``EvaluationParams`` (pydantic dataclasses)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.schemas.common import JobOut


class EvaluationOut(JobOut):
    plot_url: str | None = Field(None, description="PNG chart of the metrics table, once succeeded.")
    report: dict[str, Any] | None = Field(None, description="The metrics table (methods' accuracy, 95% CI vs "
                                                            "BoTr, PGR), once succeeded.")


class EvaluationList(BaseModel):
    evaluations: list[EvaluationOut] = Field(description="Newest first.")
