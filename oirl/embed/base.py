"""The Embedder protocol, its identity record, and a small deterministic embedder for tests.

An embedder turns texts into unit-length float32 vectors. Everything downstream (the cache,
reward models, model versions) keys on ``identity``, so two embedders that could produce
different vectors must never share an identity.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class EmbedderIdentity:
    """What produced a vector: recorded in every reward-model artefact and used as the cache key."""

    name: str
    """Model name or path as configured, e.g. ``all-MiniLM-L6-v2``."""
    revision: str
    """Content hash of the weights (or of the algorithm's parameters), so a silent swap is visible."""
    dim: int
    """Length of each vector."""

    @property
    def key(self) -> str:
        return f"{self.name}@{self.revision}"

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class Embedder(Protocol):
    """``encode(texts) -> (n, dim) float32``, rows of unit L2 norm."""

    @property
    def identity(self) -> EmbedderIdentity: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


_TOKEN = re.compile(r"\w+", re.UNICODE)


class HashingBagOfWordsEmbedder:
    """Bag of words hashed into ``dim`` signed buckets (the hashing trick), then L2-normalised.

    A real embedder, not a mock: deterministic, instant and dependency-free, so unit tests
    can exercise the cache, the reward model and selection without loading a transformer.
    It is far weaker than MiniLM and is never the default.
    """

    def __init__(self, dim: int = 64):
        self.dim = dim

    @property
    def identity(self) -> EmbedderIdentity:
        return EmbedderIdentity(name=f"hashing-bow-{self.dim}", revision="blake2b-v1", dim=self.dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
                # The sign bit keeps collisions from only ever adding up (unbiased inner products).
                out[i, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        # An empty text would be the zero vector; give it a fixed direction so it stays unit-norm.
        out[np.all(out == 0, axis=1), 0] = 1.0
        return l2_normalise(out)
