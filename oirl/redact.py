"""Error text fit for a client: no server paths, no tracebacks (those go to the service log)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def redact_paths(text: str, roots=()) -> str:
    """Replace the server's directories (data home, artefacts, temp, home, Python prefix, cwd) by ``…``."""
    known = [*roots, tempfile.gettempdir(), sys.prefix, sys.base_prefix, Path.home(), os.getcwd()]
    # Longest first: a data home inside the user's home is cut as a whole.
    for root in sorted({str(r).rstrip("/") for r in known if r and len(str(r)) > 1}, key=len, reverse=True):
        text = text.replace(root, "…")
    return text


def public_error(exc: BaseException, roots=()) -> str:
    """An exception as a client may read it: its type and message, server paths cut. A database error
    keeps only its driver's first line: SQLAlchemy's text carries the statement and its parameters."""
    from sqlalchemy.exc import StatementError

    if isinstance(exc, StatementError):
        inner = exc.orig if exc.orig is not None else exc
        first = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
        return redact_paths(f"the store refused the job's query: {type(inner).__name__}: {first}"[:300], roots)
    return redact_paths(f"{type(exc).__name__}: {exc}", roots)
