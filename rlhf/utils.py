"""Small shared helpers: JSONL metrics and seeding."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from rlhf.config import field_docs, undocumented_fields  # noqa: F401  (importable from here too)


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

