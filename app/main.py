"""App factory. ``oirl serve`` runs migrations, then uvicorn on ``app.main:create_app``."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app import errors
from app.limits import BodySizeLimit
from app.metrics import Metrics, MetricsMiddleware
from app.routes import admin, evaluations, feedback, health, live, logs, models, prompts, select, tasks, web
from app.service import Service
from oirl.settings import Settings, get_settings

DESCRIPTION = """Serve the query-dependent best prompt without calling an LLM (Prompt-OIRL).

Errors are `application/problem+json` with a `detail` saying what is wrong. Write and admin
routes need `Authorization: Bearer <OIRL_ADMIN_TOKEN>`; with no token configured they answer 403.
"""


def create_app(settings: Settings | None = None, *, embedder=None, training_embedder=None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = Service(settings, metrics, embedder=embedder, training_embedder=training_embedder)
        app.state.service = service
        service.start()
        service.selector.start()
        try:
            yield
        finally:
            await service.selector.stop()
            service.stop()

    app = FastAPI(title="Prompt-OIRL", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    errors.install(app)
    for module in (select, feedback, tasks, evaluations, logs, prompts, models, admin, health, live, web):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")  # the console's CSS and JS
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)  # outermost: before parsing and auth
    errors.document(app)
    return app
