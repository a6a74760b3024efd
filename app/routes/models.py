"""GET /v1/models: versions, aliases, metrics."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ServiceDep
from app.errors import ProblemError
from app.routes import problems
from app.schemas.common import TaskQuery, VersionPath
from app.schemas.models import ModelList, ModelVersionOut
from oirl.registry import TaskNotFound, VersionInfo, VersionNotFound

router = APIRouter(prefix="/v1/models", tags=["models"])


def version_out(v: VersionInfo) -> ModelVersionOut:
    return ModelVersionOut(version=v.id, task=v.task, created_at=v.created_at, aliases=v.aliases, backend=v.backend,
                           params=v.params, embedder=v.embedder, embedder_revision=v.embedder_revision,
                           library_versions=v.library_versions, data_snapshot=v.data_snapshot, metrics=v.metrics,
                           artefact_sha256=v.artefact_sha256, job_id=v.job_id)


@router.get("", response_model=ModelList, summary="Model versions (newest first), per-task aliases and gates",
            responses=problems(404, 422))
def list_models(service: ServiceDep, task: TaskQuery = None) -> ModelList:
    try:
        versions = service.registry.list(task)
    except TaskNotFound as exc:
        raise ProblemError(404, str(exc)) from exc
    return ModelList(aliases=service.registry.aliases(task),
                     serving={t: m.version for t, m in service.watcher.serving.items() if task in (None, t)},
                     versions=[version_out(v) for v in versions])


@router.get("/{version}", response_model=ModelVersionOut, summary="One model version",
            responses=problems(404, 422))
def get_model(version: VersionPath, service: ServiceDep) -> ModelVersionOut:
    try:
        return version_out(service.registry.get(version))
    except VersionNotFound as exc:
        raise ProblemError(404, str(exc)) from exc
