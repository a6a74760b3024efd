"""Dependencies as ``Annotated`` aliases: the service container, the champion, and the admin token."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import ProblemError
from app.service import Service
from oirl.registry import LoadedModel


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def champion_for(service: Service, task: str) -> LoadedModel:
    """The task's serving model, or a 503 that says why there is none."""
    current = service.watcher.current(task)
    if current is None:
        why = service.watcher.errors.get(task) or (f"task {task!r} has no champion model yet (train one: "
                                                   "POST /admin/retrain, then promote it)")
        raise ProblemError(503, why, headers={"Retry-After": "5"})
    return current


_bearer = HTTPBearer(auto_error=False, description="OIRL_ADMIN_TOKEN; admin and write routes refuse without it.")


def require_admin(service: ServiceDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    configured = service.settings.admin_token
    if configured is None or not configured.get_secret_value():
        # Never open: with no token configured, write routes are simply off.
        raise ProblemError(403, "write and admin routes are disabled: no admin token is configured "
                                "(set OIRL_ADMIN_TOKEN)")
    if credentials is None:
        raise ProblemError(401, "missing `Authorization: Bearer <token>` header",
                           headers={"WWW-Authenticate": "Bearer"})
    # compare_digest: the time taken does not reveal how much of the token matched.
    if not hmac.compare_digest(credentials.credentials.encode(), configured.get_secret_value().encode()):
        raise ProblemError(401, "invalid bearer token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


AdminDep = Depends(require_admin)
