"""GET /v1/live: what the console's Live page draws."""

from __future__ import annotations

from pydantic import BaseModel, Field

from oirl.validation import UTCDateTime


class LatencyMs(BaseModel):
    p50: float | None = Field(description="Median latency of POST /v1/select (2xx) in the window, ms.")
    p99: float | None = Field(description="99th percentile, ms (interpolated within histogram buckets).")


class JudgedPoint(BaseModel):
    at: UTCDateTime = Field(description="Start of the time bucket.")
    n: int = Field(description="Decisions judged (feedback received) in the bucket.")
    accuracy: float = Field(description="Mean reward of those decisions.")


class TaskRates(BaseModel):
    decisions: int = Field(description="Decisions in the last minute, by every worker (the decision log).")
    per_second: float
    fallback_share: float | None = Field(description="null: no decision in the window.")
    exploration_share: float | None


class LiveOut(BaseModel):
    scope: str = Field(description="Where the serving figures come from (this worker's counters, or the store).")
    window_seconds: float = Field(description="The figures cover this many seconds, up to now.")
    selections: int = Field(description="Selections answered in the window.")
    selections_per_second: float
    fallback_share: float | None = Field(description="Share of selections that fell back to the safe default; "
                                                     "null: no selection in the window.")
    exploration_share: float | None = Field(description="Share of selections that explored (not the greedy choice).")
    cache_hit_rate: float | None = Field(description="Share of selections answered from the selection cache.")
    latency_ms: LatencyMs
    models: dict[str, int] = Field(description="Task -> the champion version this worker serves.")
    tasks: dict[str, TaskRates] = Field(description="Task -> its decisions of the last minute, from the store "
                                                    "(every worker's, so every worker answers the same).")
    store_error: str | None = Field(None, description="Why `tasks` and `judged` are empty (the store is down); "
                                                     "this worker's own figures above are still live.")
    judged: dict[str, list[JudgedPoint]] = Field(
        description="Task -> judged accuracy over the last 6 hours in 5-minute buckets: the mean reward of "
                    "decisions that received feedback (observations with a decision_id), from the store.")
