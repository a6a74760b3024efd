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

from oirl.redact import redact_paths

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


class ProblemError(Exception):
    """Raise anywhere in a route to answer with a problem document."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None,
                 errors: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers, self.errors = status, detail, headers, errors


def server_roots(request: Request) -> tuple:
    """The service's own directories, cut from any text a client reads (``oirl.redact``)."""
    service = getattr(request.app.state, "service", None)
    if service is None:
        return ()
    s = service.settings
    return (s.home, s.resolved_artefact_dir, s.resolved_artefact_cache_dir, s.resolved_benchmark_dir)


def problem(status: int, detail: str, request: Request | None = None, headers: dict | None = None,
            errors: list | None = None) -> JSONResponse:
    if request is not None:
        detail = redact_paths(detail, server_roots(request))
    body: dict[str, Any] = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
                            "detail": detail}
    if request is not None:  # the path as sent, cut: a 10 MB name must not come back in the answer
        path = request.url.path
        body["instance"] = path if len(path) <= 200 else path[:200] + "…"
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _where(loc: tuple) -> str:
    # The first element says where (body, query string, path, header); the rest is the field.
    parts = [str(p) for p in loc]
    where = parts[0] if parts else "body"
    return ".".join(parts[1:]) or where


# Messages of the shared validators (oirl.validation) read as a predicate of the field.
_PREDICATES = ("is ", "contains ", "must ")


def _describe(err: dict) -> str:
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    if kind == "json_invalid":
        return f"invalid JSON: {ctx.get('error', 'cannot be parsed')}"
    where = _where(err["loc"])
    if kind == "missing":
        return f"{where}: field required"
    if kind == "extra_forbidden":
        return f"{where}: unknown field"
    if kind in ("string_too_short", "too_short") and ctx.get("min_length") == 1:
        return f"{where} is empty"
    if kind == "string_unicode":
        return f"{where} is not valid Unicode text (e.g. a lone UTF-16 surrogate)"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where} {msg}" if msg.startswith(_PREDICATES) else f"{where}: {msg}"


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": [str(p) for p in e["loc"]], "msg": _describe(e), "type": e.get("type")} for e in exc.errors()]
    detail = "; ".join(dict.fromkeys(e["msg"] for e in errors[:10]))
    if len(errors) > 10:
        detail += f"; and {len(errors) - 10} more"
    return problem(422, detail, request, errors=errors)


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts on this path: a path can be served by several routes, and
    Starlette's own ``Allow`` names only the first route's."""
    from starlette.routing import Match

    scope = {k: v for k, v in request.scope.items() if k not in ("route", "endpoint", "path_params")}
    routes = request.app.router.routes
    return [m for m in METHODS if any(r.matches({**scope, "method": m})[0] == Match.FULL for r in routes)]


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).description
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}"
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {', '.join(allowed)}"
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI answers an undecodable body with a bare 400; it is invalid JSON like any other.
        return problem(422, f"invalid JSON: the body is not UTF-8 (byte {exc.__cause__.start})", request)
    if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
        return problem(422, "invalid JSON: nested deeper than the parser allows", request)
    return problem(exc.status_code, detail, request, headers=headers or None)


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
    # Close the connection: the client must not reuse a keep-alive connection in an unknown state,
    # and must be told so rather than find it reset on its next request.
    return problem(500, "internal error; the request was not completed (see the service log)", request,
                   headers={"Connection": "close"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(ProblemError, _problem)
    for kind in STORE_ERRORS:
        app.add_exception_handler(kind, _store_unreachable)
    app.add_exception_handler(Exception, _unexpected)


def document(app: FastAPI) -> None:
    """Make the OpenAPI document say what the service sends: every 4xx/5xx is a problem document
    (FastAPI would document its automatic 422, and any response given a model, as ``application/json``)."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        ref = {"$ref": "#/components/schemas/Problem"}
        for path in schema.get("paths", {}).values():
            for op in path.values():
                for code, response in op.get("responses", {}).items():
                    if code == "422":
                        response["description"] = "Invalid request (the field and the limit in `detail`)"
                    if code[0] in "45":
                        response["content"] = {PROBLEM: {"schema": ref}}
        schemas = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
