"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from app.deps import ServiceDep
from app.errors import problem, server_roots
from app.routes import problems
from app.schemas.health import Health, Readiness
from oirl.redact import redact_paths

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses=problems(503),
            summary="Readiness: store reachable, champions loaded, embedder warm (degraded: a task serves an "
                    "older model because its champion failed to load)")
async def readyz(service: ServiceDep, request: Request):
    reasons, degraded = await run_in_threadpool(service.readiness)
    if reasons:
        return problem(503, "not ready: " + "; ".join(reasons), request, headers={"Retry-After": "2"})
    serving = {t: m.version for t, m in service.watcher.serving.items()}
    roots = server_roots(request)
    return Readiness(ready=True, degraded=bool(degraded), models=serving, embedder=service.embedder.identity.key,
                     reasons=[redact_paths(r, roots) for r in degraded], decision_log=service.decisions.status())


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(service: ServiceDep) -> Response:
    body = await run_in_threadpool(generate_latest, service.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
