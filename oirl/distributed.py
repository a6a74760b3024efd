"""Scale-out on an existing Dask cluster: embedding on the workers, boosting with the engines' own Dask trainers.

Configured by ``OIRL_DASK_SCHEDULER`` (or ``oirl train --dask ADDRESS``); without it nothing here
is imported and everything runs in one process as before. What runs where:

- **Embedding** (``ClusterEmbedder``): the client dedupes the texts and reads the embedding cache
  in bulk; only the misses travel, sorted by length and cut into partitions, to the workers.
  Each worker builds the embedder once (``_worker_embedder``, cached per worker process) and
  returns vectors and its identity; the client checks every partition came from the same
  identity as the cache key, and writes each partition to the cache in one transaction as it
  arrives (an interrupted run resumes where it stopped, as the local cache does).
- **Training** (``oirl.reward.dask_backends``): the client builds the feature matrix (neighbour
  features need every training outcome), scatters it in row partitions, and LightGBM's
  ``DaskLGBMClassifier`` / ``xgboost.dask`` grow the trees on the workers.
- The ``mlp`` backend has no Dask trainer and is refused (``check_backend``).

``distributed`` is a dependency, but imported only when a scheduler is configured.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from oirl.embed.base import Embedder, EmbedderIdentity
from oirl.embed.cache import EmbeddingCache, text_sha256

DASK_BACKENDS = ("lightgbm", "xgboost")


class ClusterError(RuntimeError):
    """The cluster cannot be used: unreachable scheduler, no workers, or an unsupported combination."""


def check_backend(backend: str) -> None:
    if backend not in DASK_BACKENDS:
        raise ClusterError(f"the {backend!r} backend has no Dask trainer; with a Dask scheduler use "
                           f"{' or '.join(DASK_BACKENDS)}, or train {backend!r} without --dask / OIRL_DASK_SCHEDULER")


def connect(address: str, timeout: float = 10.0):
    """A ``distributed.Client`` for the scheduler at ``address``, with at least one worker; ClusterError otherwise."""
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - a dependency, but say what to install if it was stripped
        raise ClusterError("a Dask scheduler is configured but `distributed` is not installed: "
                           "pip install 'dask[distributed]'") from exc
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s ({exc}); "
                           "check OIRL_DASK_SCHEDULER / --dask, or unset it to run in this process") from exc
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError as exc:
        client.close()
        raise ClusterError(f"the Dask scheduler at {address!r} has no workers (waited {timeout:g} s)") from exc
    return client


@contextmanager
def training_engine(settings, address: str | None = None, backend: str = "lightgbm", local_embedder=None):
    """``(embedder, client)`` for one training run: the Dask cluster's when ``address`` (or
    ``settings.dask_scheduler``) is set, connected for this run only and closed after; else this process's
    ``local_embedder`` (default: the cached ``make_embedder(settings)``) and no client."""
    address = address or settings.dask_scheduler
    if not address:
        from oirl.embed import make_embedder

        yield local_embedder or make_embedder(settings, progress=True), None
        return
    check_backend(backend)
    client = connect(address, timeout=settings.dask_connect_timeout)
    try:
        yield ClusterEmbedder.from_settings(settings, client), client
    finally:
        client.close()


@dataclass(frozen=True)
class EmbedderSpec:
    """What a worker needs to build the same embedder as this process (it is pickled to the workers)."""

    name: str
    encoder: str
    sub_batch: int
    encoder_dir: str | None
    """The client's explicit OIRL_ENCODER_DIR (a shared directory), else None: each worker's own default."""

    @classmethod
    def from_settings(cls, settings) -> EmbedderSpec:
        return cls(settings.embedder, settings.encoder, settings.encoder_sub_batch,
                   str(settings.encoder_dir) if settings.encoder_dir else None)


_loading = threading.Lock()


def _worker_embedder(spec: EmbedderSpec) -> Embedder:
    """Runs on a worker: the embedder is loaded once per worker process and reused by every partition
    (the lock: a worker's threads starting their first partitions together must not each load one)."""
    with _loading:
        return _load_embedder(spec)


@functools.lru_cache(maxsize=4)
def _load_embedder(spec: EmbedderSpec) -> Embedder:
    from oirl.embed import make_embedder
    from oirl.settings import Settings

    overrides = {"embedder": spec.name, "encoder": spec.encoder, "encoder_sub_batch": spec.sub_batch}
    if spec.encoder_dir:
        overrides["encoder_dir"] = spec.encoder_dir
    # One intra-op thread per call: a worker runs one partition per thread at once, so its cores fill up by
    # partitions, never oversubscribed by each call also spreading over all of them.
    return make_embedder(Settings(**overrides), cache=False, progress=False, threads=1)


def _embed_partition(spec: EmbedderSpec, texts: list[str]) -> tuple[str, np.ndarray]:
    embedder = _worker_embedder(spec)
    return embedder.identity.key, embedder.encode(texts)


def _worker_identity(spec: EmbedderSpec) -> EmbedderIdentity:
    return _worker_embedder(spec).identity


class ClusterEmbedder:
    """An ``Embedder`` whose cache misses are encoded on the Dask workers, ``partition_size`` texts per task.

    ``encode`` returns exactly what the local cached embedder would: vectors in input order, by the
    same identity (asked of a worker, checked on every partition). ``n_embedded_`` counts the texts
    actually sent to the cluster, so a caller can see a warm cache embed nothing.
    """

    def __init__(self, client, spec: EmbedderSpec, cache: EmbeddingCache | None, partition_size: int = 512):
        self.client, self.spec, self.cache, self.partition_size = client, spec, cache, partition_size
        self.n_embedded_ = 0

    @classmethod
    def from_settings(cls, settings, client, cache: bool = True, partition_size: int = 512) -> ClusterEmbedder:
        from oirl.embed import CACHE_FILE

        store = EmbeddingCache(settings.cache_dir / CACHE_FILE) if cache else None
        return cls(client, EmbedderSpec.from_settings(settings), store, partition_size)

    @cached_property
    def identity(self) -> EmbedderIdentity:
        return self.client.submit(_worker_identity, self.spec, pure=False).result()

    def warm(self) -> None:
        """Load the embedder on every worker now (one task pinned to each), not inside the first partitions."""
        futures = [self.client.submit(_worker_identity, self.spec, workers=[w], allow_other_workers=False,
                                      pure=False) for w in self.client.nthreads()]
        identities = {f.result() for f in futures}
        if len(identities) != 1:
            raise ClusterError(f"the workers load different embedders: {sorted(i.key for i in identities)}")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from distributed import as_completed

        texts = list(texts)
        ident = self.identity
        hashes = [text_sha256(t) for t in texts]
        found = self.cache.get_many(ident.key, hashes, ident.dim) if self.cache else {}
        text_of = dict(zip(hashes, texts, strict=True))
        missing = sorted((h for h in dict.fromkeys(hashes) if h not in found), key=lambda h: len(text_of[h]))
        # Sorted by length, so a partition's texts pad alike inside the encoder's sub-batches.
        parts = [missing[s : s + self.partition_size] for s in range(0, len(missing), self.partition_size)]
        futures = {self.client.submit(_embed_partition, self.spec, [text_of[h] for h in part], pure=False): part
                   for part in parts}
        for future in as_completed(futures, loop=self.client.loop):
            key, vectors = future.result()
            if key != ident.key:
                raise ClusterError(f"a worker embedded with {key}, not {ident.key}: the workers run different "
                                   "embedder weights or encoders; give them the same installation")
            part = futures.pop(future)
            if self.cache:
                self.cache.put_many(ident.key, zip(part, vectors, strict=True))
            found.update(zip(part, vectors, strict=True))
            self.n_embedded_ += len(part)
        out = np.empty((len(texts), ident.dim), dtype=np.float32)
        for i, h in enumerate(hashes):
            out[i] = found[h]
        return out


def scatter_rows(client, arrays: Sequence[np.ndarray], n_parts: int):
    """Row-aligned numpy arrays -> dask arrays with the same row chunks. Each chunk goes straight to a worker
    (not through the scheduler's task graph), chunk i of every array to the same worker, round robin."""
    import dask
    import dask.array as da

    workers = sorted(client.nthreads())
    n = len(arrays[0])
    bounds = np.linspace(0, n, max(1, min(n_parts, n)) + 1).astype(int)
    out = []
    for a in arrays:
        parts = []
        for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            chunk = a[lo:hi]
            future = client.scatter(chunk, workers=[workers[i % len(workers)]], hash=False)
            parts.append(da.from_delayed(dask.delayed(future), shape=chunk.shape, dtype=chunk.dtype))
        out.append(da.concatenate(parts))
    return out
