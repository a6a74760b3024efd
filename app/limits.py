"""A request body's size is bounded before anything reads it: parsing, auth, the route.

Why here: FastAPI reads and parses a JSON body whole before validation and before a dependency
such as the admin token runs, so a 200 MB body to ``/v1/select`` (no token needed) took a worker
from 522 MB to 1.1 GB. This ASGI middleware refuses a declared ``Content-Length`` over the limit
at once, and reads a body sent without one (chunked) only up to the limit, answering 413 as soon as
it passes; nothing beyond the limit is ever buffered.
"""

from __future__ import annotations

import json
from http import HTTPStatus

PROBLEM = "application/problem+json"


class BodySizeLimit:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(scope, send, int(declared))
        # Read the body here, at most max_bytes of it, then hand it on: an exception raised from inside
        # the app's own read would reach Starlette's error middleware first and become a 500.
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                return await self.app(scope, _replay([message], receive), send)
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            more = message.get("more_body", False)
            if seen > self.max_bytes:
                return await self._refuse(scope, send, None)
        body = b"".join(chunks)
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)

    async def _refuse(self, scope, send, size: int | None) -> None:
        what = f"{size:,} bytes" if size is not None else "more bytes than that"
        body = json.dumps({"type": "about:blank", "title": HTTPStatus(413).phrase, "status": 413,
                           "detail": f"the request body is {what}, over the limit of {self.max_bytes:,} bytes "
                                     "(OIRL_MAX_BODY_BYTES)", "instance": (scope.get("path") or "")[:200]}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[dict], receive):
    """A ``receive`` that hands out ``messages`` first, then waits on the real one (disconnects)."""
    queue = list(messages)

    async def replayed():
        return queue.pop(0) if queue else await receive()

    return replayed
