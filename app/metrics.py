"""Prometheus metrics with bounded label sets: route templates (never raw paths), no query text.

One ``CollectorRegistry`` per app instance, so several apps in one process (tests) never clash.
The HTTP middleware is plain ASGI (no BaseHTTPMiddleware) to keep the per-request cost tiny.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from oirl.live_stats import LiveWindow, Snapshot

_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
SELECT_ROUTE = "/v1/select"  # the live latency figures are of single selections (a batch is one request)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram("oirl_http_request_duration_seconds", "HTTP request latency by route template.",
                                 ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.selections = Counter("oirl_selections_total", "Prompt selections by outcome (model: the model's "
                                  "choice; fallback: the safe default; explored: drawn by exploration).",
                                  ["outcome"], registry=r)
        self.cache = Counter("oirl_selection_cache_total", "Selection cache lookups.", ["result"], registry=r)
        self.encoder_batch = Histogram("oirl_encoder_batch_size", "Queries per encoder pass (micro-batching).",
                                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.model_info = Gauge("oirl_model_info", "The model version this worker serves per task (value 1).",
                                ["task", "version", "embedder"], registry=r)
        self._served: set[tuple[str, str, str]] = set()
        self.model_swaps = Counter("oirl_model_swaps_total", "Champion hot-swaps in this worker.", registry=r)
        self.jobs_finished = Counter("oirl_jobs_finished_total", "Jobs this worker finished.", ["kind", "status"],
                                     registry=r)
        self.live = LiveWindow(Snapshot(time.monotonic()))

    def snapshot(self) -> Snapshot:
        """This worker's selection counters now, read through prometheus_client's public ``collect``."""
        def by(metric, label: str) -> dict[str, float]:
            return {s.labels[label]: s.value for s in metric.collect()[0].samples if s.name.endswith("_total")}

        buckets: dict[float, float] = {}
        for s in self.latency.collect()[0].samples:
            if (s.name.endswith("_bucket") and s.labels["route"] == SELECT_ROUTE
                    and s.labels["status"].startswith("2")):
                bound = float(s.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + s.value
        return Snapshot(time.monotonic(), by(self.selections, "outcome"), by(self.cache, "result"),
                        tuple(sorted(buckets.items())))

    def set_model(self, task: str, version: int, embedder: str) -> None:
        for labels in [k for k in self._served if k[0] == task]:  # exactly one series per task
            self.model_info.remove(*labels)
            self._served.discard(labels)
        labels = (task, str(version), embedder)
        self.model_info.labels(*labels).set(1)
        self._served.add(labels)
        self.model_swaps.inc()

    def add_decision_log(self, decisions) -> None:
        """The decision log's counters, read at scrape time (this worker's own queue)."""

        class _Decisions:
            def collect(self):
                yield CounterMetricFamily("oirl_decisions_written", "Decisions this worker stored.",
                                          value=decisions.written)
                yield CounterMetricFamily("oirl_decisions_dropped", "Decisions this worker could not queue "
                                          "(store too slow for too long); their feedback will be refused.",
                                          value=decisions.dropped)
                yield CounterMetricFamily("oirl_decisions_rejected", "Decisions the store refused for their "
                                          "content, set aside so later ones are still written.",
                                          value=decisions.rejected)
                yield GaugeMetricFamily("oirl_decisions_queued", "Decisions waiting to be stored.",
                                        value=decisions.queued)

        self.registry.register(_Decisions())

    def add_job_counts(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        """Jobs by kind and status, read from the store at scrape time (shared by every worker)."""

        class _Jobs:
            def collect(self):
                fam = GaugeMetricFamily("oirl_jobs", "Jobs in the store by kind and status.", labels=["kind", "status"])
                try:
                    for (kind, status), n in sorted(counts().items()):
                        fam.add_metric([kind, status], n)
                except Exception:  # the store being down must not break /metrics
                    pass
                yield fam

        self.registry.register(_Jobs())


class MetricsMiddleware:
    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.metrics.latency.labels(method, template, str(status)).observe(time.perf_counter() - start)
