"""POST /admin/retrain and POST /v1/evaluations."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import JobOut

Backend = Literal["lightgbm", "xgboost", "mlp"]


class RetrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str | None = Field(None, description="Only this dataset's training logs (default: all).")
    llm: str | None = Field(None, description="Only this LLM's logs (default: all).")
    backend: Backend = "lightgbm"
    params: dict[str, Any] | None = Field(None, description="Backend parameters overriding its defaults.")
    features: Literal["concat", "concat+product"] = "concat"
    holdout_fraction: float = Field(0.2, gt=0, lt=1, description="Share of questions held out to judge the "
                                                                 "challenger against the champion.")
    max_queries: int | None = Field(None, ge=10, description="Train on a seeded subsample of questions.")
    seed: int = 0


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(description="Dataset whose logs to evaluate on (e.g. gsm8k, svamp, mawps).")
    llm: str | None = None
    protocol: Literal["paper", "grouped"] = "paper"
    k: int = Field(6, ge=1, le=6, description="Number of training prompts (benchmark prompts 0..k-1).")
    prompts: list[int] | None = Field(None, description="Explicit training prompt indices instead of k.")
    held_out: bool = Field(False, description="Also offer the 10 held-out benchmark prompts at test time.")
    backend: Backend = "lightgbm"
    params: dict[str, Any] | None = None
    seed: int = 0
    n_boot: int = Field(2000, ge=100, le=20000)
    max_queries: int | None = Field(None, ge=10, description="Evaluate on a seeded subsample of queries.")
    test_fraction: float | None = Field(None, gt=0, lt=1, description="grouped protocol: share of questions "
                                                                      "tested (default: the paper split's share).")


class EvaluationOut(JobOut):
    plot_url: str | None = Field(None, description="PNG chart of the metrics table, once succeeded.")
    report: dict[str, Any] | None = Field(None, description="The metrics table (methods' accuracy, 95% CI vs "
                                                            "BoTr, PGR), once succeeded.")
