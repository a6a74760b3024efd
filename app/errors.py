"""Every error leaves as ``application/problem+json`` with a ``detail`` that says what is wrong."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


class ProblemError(Exception):
    """Raise anywhere in a route to answer with a problem document."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None,
                 errors: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers, self.errors = status, detail, headers, errors


def problem(status: int, detail: str, request: Request | None = None, headers: dict | None = None,
            errors: list | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
                            "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _where(loc: tuple) -> str:
    # The first element says where (body, query string, path, header); the rest is the field.
    parts = [str(p) for p in loc]
    where = parts[0] if parts else "body"
    return ".".join(parts[1:]) or where


def _describe(err: dict) -> str:
    kind = err.get("type", "")
    if kind == "json_invalid":
        return f"invalid JSON: {err.get('ctx', {}).get('error', 'cannot be parsed')}"
    if kind == "missing":
        return f"{_where(err['loc'])}: field required"
    if kind == "extra_forbidden":
        return f"{_where(err['loc'])}: unknown field"
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    return f"{_where(err['loc'])}: {msg}"


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": [str(p) for p in e["loc"]], "msg": _describe(e), "type": e.get("type")} for e in exc.errors()]
    detail = "; ".join(dict.fromkeys(e["msg"] for e in errors[:10]))
    if len(errors) > 10:
        detail += f"; and {len(errors) - 10} more"
    return problem(422, detail, request, errors=errors)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).description
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}"
    return problem(exc.status_code, detail, request, headers=getattr(exc, "headers", None))


async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
    return problem(exc.status, exc.detail, request, headers=exc.headers, errors=exc.errors)


STORE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)  # a store that is down, locked or saturated


async def _store_unreachable(request: Request, exc: Exception) -> JSONResponse:
    # A store that is down, locked or out of connections is a temporary condition, not a bug.
    log.warning("store error on %s %s: %s", request.method, request.url.path, str(exc).splitlines()[0][:200])
    return problem(503, "the store is not reachable right now; try again shortly", request,
                   headers={"Retry-After": "2"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal error; the request was not completed (see the service log)", request)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(ProblemError, _problem)
    for kind in STORE_ERRORS:
        app.add_exception_handler(kind, _store_unreachable)
    app.add_exception_handler(Exception, _unexpected)
