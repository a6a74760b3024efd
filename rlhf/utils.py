"""Small shared helpers: JSONL metrics, seeding, and the doc strings of dataclass fields."""

from __future__ import annotations

import ast
import inspect
import json
import os
import random
import textwrap
from dataclasses import fields
from functools import cache
from pathlib import Path

import numpy as np
import torch


class JsonlLogger:
    """Append one JSON object per call to a file (or nowhere when `path` is None); returns the record."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, record: dict) -> dict:
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        return record


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def seed_everything(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator on `device` for sampling and shuffling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator(device=device).manual_seed(seed)


@cache
def field_docs(cls) -> dict[str, str]:
    """The string literal written under each dataclass field (cleanrl/tyro style), by field name; a subclass's
    doc string wins over its base's."""
    docs = {}
    for klass in reversed(cls.__mro__):
        if klass is object or "__dataclass_fields__" not in vars(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, nxt in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = nxt.value.value.strip()
    return docs


def undocumented_fields(cls) -> list[str]:
    docs = field_docs(cls)
    return [f.name for f in fields(cls) if f.name not in docs]
