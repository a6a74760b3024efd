"""A real server process keeps its memory bounded under many distinct large requests (issue 9:
each answer with 64 long candidates costs ~1 MB, and the answer cache was bounded by entries only,
20,000 of them: ~20 GB).

Load: ``N_REQUESTS`` distinct /v1/select requests, each with a new 8,000-character query and 64
candidate texts of 8,000 characters (the limits), against ``uvicorn`` in its own process with the
default cache settings (64 MiB of answers, 64 MiB of embeddings). Measured: the process's RSS
(psutil) after a warm-up and after the load. Without the byte bound the answers alone would hold
~N_REQUESTS MB."""

from __future__ import annotations

import httpx
import psutil
import pytest
from service_support import server_process

pytestmark = [pytest.mark.memory, pytest.mark.slow]

N_WARMUP, N_REQUESTS = 30, 250
GROWTH_BOUND_MB = 160  # 64 MiB of answers + 48 MiB of query embeddings at most, + allocator slack


def distinct_requests(n: int, start: int = 0):
    candidates = [{"text": f"Prompt {j}: " + "think in small steps " * 380} for j in range(64)]  # ~8,000 chars
    for i in range(start, start + n):
        query = f"Question {i}: what is {i} + {i}? " + f"context {i} " * 700
        yield {"query": query[:8_000], "candidates": candidates}


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def drive(base: str, pid: int, n_warmup: int = N_WARMUP, n_requests: int = N_REQUESTS) -> dict:
    with httpx.Client(base_url=base, timeout=60) as c:
        for body in distinct_requests(n_warmup):
            assert c.post("/v1/select", json=body).status_code == 200
        after_warmup = rss_mb(pid)
        peak = after_warmup
        for n, body in enumerate(distinct_requests(n_requests, start=n_warmup)):
            r = c.post("/v1/select", json=body)
            assert r.status_code == 200, r.text[:300]
            if n % 50 == 0:
                peak = max(peak, rss_mb(pid))
        answer_mb = len(r.content) / 2**20
    after = rss_mb(pid)
    return {"requests": n_warmup + n_requests, "answer_mb": round(answer_mb, 2),
            "rss_after_warmup_mb": round(after_warmup, 1), "rss_after_mb": round(after, 1),
            "rss_peak_mb": round(max(peak, after), 1), "growth_mb": round(max(peak, after) - after_warmup, 1)}


def test_rss_stays_bounded_under_many_distinct_large_requests(settings):
    with server_process(settings) as (base, pid):
        figures = drive(base, pid)
    print(figures)
    assert figures["answer_mb"] > 0.45  # each answer really is large (the candidates come back ranked)
    assert figures["growth_mb"] < GROWTH_BOUND_MB, figures
