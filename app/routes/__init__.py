"""One module per resource; each exposes ``router``."""

from __future__ import annotations

from http import HTTPStatus

from app.schemas.common import Problem


def problems(*codes: int) -> dict:
    """OpenAPI ``responses`` entries for problem documents."""
    return {c: {"model": Problem, "description": HTTPStatus(c).phrase,
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for c in codes}


AUTH = (401, 403)
