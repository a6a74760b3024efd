"""Feedback: the judgement of a served decision becomes an observation with its propensity.

A decision (``oirl.store.models.Decision``) knows the query, the candidates, the prompt that
was served and the probability with which the serving policy chose it. When the caller later
learns whether the LLM's answer was right, ``record_feedback`` stores that reward as an
observation keyed by the decision id, so the logs that training and off-policy evaluation
read grow from the service's own traffic.

Per decision, exactly one judgement: sending the same one again is harmless
(``already_recorded``), a different one is a ``conflict``. Decisions older than the
retention are ``expired`` (their context is about to be deleted), ids never issued are
``unknown``. The HTTP route maps these to 200 / 409 / 410 / 404; the CLI prints them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import pandas as pd
from pydantic import ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass
from sqlalchemy import select, update

from oirl.hashing import text_sha256
from oirl.store.engine import transaction
from oirl.store.logs import import_observations
from oirl.store.models import Decision, Prompt, Task
from oirl.validation import SafeText


def new_decision_id() -> str:
    """32 hex digits: the issuing time in milliseconds since the epoch (12 digits), then 80 random bits.

    Time first, as in a UUIDv7: whoever receives the feedback can tell a decision made a moment ago
    on another replica, whose decision log has not written it yet, from one that was never issued."""
    return f"{int(time.time() * 1000) & (16**12 - 1):012x}{secrets.token_hex(10)}"


def seconds_since_issued(decision_id: str, now: float | None = None) -> float | None:
    """How long ago ``new_decision_id`` made this id; None for ids of another shape (older ones)."""
    if len(decision_id) != 32:
        return None
    try:
        issued_ms = int(decision_id[:12], 16)
        int(decision_id[12:], 16)
    except ValueError:
        return None
    return (time.time() if now is None else now) - issued_ms / 1000


Status = Literal["recorded", "already_recorded", "unknown", "expired", "conflict"]
HTTP_STATUS = {"recorded": 200, "already_recorded": 200, "unknown": 404, "expired": 410, "conflict": 409}


@dataclass(config=ConfigDict(extra="forbid"))
class Feedback:
    """The judgement of one decision: the body of ``POST /v1/feedback`` and a row of
    ``oirl data feedback FILE``."""

    decision_id: SafeText = Field(min_length=1, max_length=64,
                                  description="The `decision_id` of a /v1/select answer.")
    reward: float | None = Field(None, ge=0.0, le=1.0, strict=True,
                                 description="The outcome as a number in [0, 1] (or give `correct`).")
    correct: bool | None = Field(None, strict=True, description="true/false: was the LLM's answer right?")

    @model_validator(mode="after")
    def exactly_one(self):
        if (self.reward is None) == (self.correct is None):
            raise ValueError("give exactly one of `reward` (0..1) or `correct` (true/false)")
        return self

    @property
    def value(self) -> float:
        return float(self.correct) if self.reward is None else float(self.reward)


@dataclass
class FeedbackResult:
    decision_id: str
    status: Status
    detail: str = ""


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def record_feedback(factory, items: Sequence[Feedback], retention_days: float,
                    now: datetime | None = None) -> list[FeedbackResult]:
    """Judge decisions in one transaction; one result per item, in order."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=retention_days)
    results: list[FeedbackResult] = []
    rows: list[dict] = []
    with transaction(factory) as s:
        ids = list(dict.fromkeys(f.decision_id for f in items))
        found = {d.id: (d, name, llm) for d, name, llm in s.execute(
            select(Decision, Task.name, Task.llm).join(Task, Task.id == Decision.task_id).where(Decision.id.in_(ids)))}
        judged_now: dict[str, float] = {}
        for f in items:
            hit = found.get(f.decision_id)
            if hit is None:
                results.append(FeedbackResult(f.decision_id, "unknown", "no such decision: never issued, or "
                                              f"deleted after the retention of {retention_days:g} days"))
                continue
            d, task, task_llm = hit
            earlier = judged_now.get(d.id, d.reward if d.judged_at is not None else None)
            if earlier is not None:
                same = abs(earlier - f.value) < 1e-12
                results.append(FeedbackResult(d.id, "already_recorded" if same else "conflict",
                                              "" if same else f"already judged with reward {earlier:g}"))
                continue
            if _aware(d.created_at) < cutoff:
                results.append(FeedbackResult(d.id, "expired", f"decided on {_aware(d.created_at):%Y-%m-%d}, "
                                              f"beyond the retention of {retention_days:g} days"))
                continue
            # Conditional: of two concurrent judgements of one decision, exactly one wins.
            won = s.execute(update(Decision).where(Decision.id == d.id, Decision.judged_at.is_(None))
                            .values(judged_at=now, reward=f.value)).rowcount
            if not won:
                s.refresh(d)
                same = d.reward is not None and abs(d.reward - f.value) < 1e-12
                results.append(FeedbackResult(d.id, "already_recorded" if same else "conflict",
                                              "" if same else f"already judged with reward {d.reward:g}"))
                continue
            judged_now[d.id] = f.value
            rows.append({"task": task, "query": d.query_text, "external_key": text_sha256(d.query_text),
                         "prompt": _chosen_text(s, d), "reward": f.value, "llm": d.llm or task_llm or "unknown",
                         "split": "train", "propensity": d.propensity, "decision_id": d.id,
                         "logged_at": _aware(d.created_at).isoformat()})
            results.append(FeedbackResult(d.id, "recorded"))
        if rows:
            # link_active=False: a free-text candidate that was served does not become a default candidate
            import_observations(s, pd.DataFrame(rows), source="feedback", link_active=False)
    return results


def _chosen_text(session, d: Decision) -> str:
    chosen = d.candidates[d.chosen]
    if "text" in chosen:
        return chosen["text"]
    return session.execute(select(Prompt.text).where(Prompt.id == chosen["id"])).scalar_one()
