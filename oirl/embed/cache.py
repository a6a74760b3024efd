"""A persistent embedding cache keyed by (embedder identity, SHA-256 of the text).

Storage is one SQLite file in WAL mode: readers never block each other or a writer, and
every batch is written in one transaction, so a crash mid-write leaves either the whole
batch or none of it — never a torn vector. Vectors are float32 bytes; the dimension is
stored beside them and checked on read.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path

import numpy as np

from oirl.embed.base import Embedder, EmbedderIdentity

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    embedder TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (embedder, text_sha256)
) WITHOUT ROWID
"""
_CHUNK = 500  # SQLite caps bound parameters per statement; stay well below.


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Get/put vectors by (embedder key, text hash). Safe to share across processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(_SCHEMA)
            con.commit()

    def _connect(self) -> sqlite3.Connection:
        # A connection per call: cheap for SQLite and safe from any thread.
        con = sqlite3.connect(self.path, timeout=30.0)
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    def get_many(self, embedder_key: str, hashes: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        with closing(self._connect()) as con:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = con.execute(
                    f"SELECT text_sha256, dim, vector FROM embeddings WHERE embedder = ? AND text_sha256 IN ({marks})",
                    [embedder_key, *chunk],
                )
                for h, d, blob in rows:
                    if d == dim and len(blob) == 4 * dim:
                        found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, embedder_key: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = [(embedder_key, h, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes())
                for h, v in items]
        if not rows:
            return
        with closing(self._connect()) as con, con:  # inner `con`: one transaction, commit or roll back
            con.executemany("INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?, ?)", rows)

    def count(self, embedder_key: str | None = None) -> int:
        with closing(self._connect()) as con:
            if embedder_key is None:
                return con.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
            return con.execute("SELECT COUNT(*) FROM embeddings WHERE embedder = ?", [embedder_key]).fetchone()[0]


class CachedEmbedder:
    """Wraps an Embedder: looks every text up in the cache and embeds only the misses, once each.

    Misses are embedded in blocks and each block is stored as soon as it is done, so an
    interrupted long run resumes where it stopped.
    """

    def __init__(self, inner: Embedder, cache: EmbeddingCache, block_size: int = 2048):
        self.inner = inner
        self.cache = cache
        self.block_size = block_size

    @property
    def identity(self) -> EmbedderIdentity:
        return self.inner.identity

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        ident = self.identity
        hashes = [text_sha256(t) for t in texts]
        found = self.cache.get_many(ident.key, hashes, ident.dim)
        missing = list(dict.fromkeys(h for h in hashes if h not in found))
        if missing:
            text_of = dict(zip(hashes, texts, strict=True))
            for start in range(0, len(missing), self.block_size):
                block = missing[start : start + self.block_size]
                vectors = self.inner.encode([text_of[h] for h in block])
                self.cache.put_many(ident.key, zip(block, vectors, strict=True))
                found.update(zip(block, vectors, strict=True))
        out = np.empty((len(texts), ident.dim), dtype=np.float32)
        for i, h in enumerate(hashes):
            out[i] = found[h]
        return out
