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
    """The task's serving model; else 409 if the task has never had a champion (the client must train one),
    or 503 with Retry-After while its champion is loading or cannot be loaded (the service must recover)."""
    current = service.watcher.current(task)
    champions = service.watcher.champions
    if current is None and champions is not None and task not in champions and task not in service.watcher.errors:
        # Not a server failure and not temporary: the task has never had a model promoted.
        raise ProblemError(409, f"task {task!r} has no champion model yet: train one (POST /admin/retrain or "
                                f"`oirl train --task {task}`), then promote it")
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
