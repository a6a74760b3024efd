"""Sentence embeddings for queries and prompts, with a persistent content-hash cache.

Entry point: ``make_embedder(settings_or_name)`` returns an ``Embedder`` (``.encode(texts)``
→ unit-norm float32 ``(n, dim)``, ``.identity`` → name + weights hash + dim), wrapped in the
on-disk cache unless ``cache=False``.
"""

from __future__ import annotations

from pathlib import Path

from oirl.embed.base import Embedder, EmbedderIdentity, HashingBagOfWordsEmbedder, l2_normalise
from oirl.embed.cache import CachedEmbedder, EmbeddingCache, text_sha256
from oirl.embed.sentence import DEFAULT_EMBEDDER, SentenceTransformerEmbedder

__all__ = [
    "DEFAULT_EMBEDDER",
    "CachedEmbedder",
    "Embedder",
    "EmbedderIdentity",
    "EmbeddingCache",
    "HashingBagOfWordsEmbedder",
    "SentenceTransformerEmbedder",
    "l2_normalise",
    "make_embedder",
    "text_sha256",
]

CACHE_FILE = "embeddings.sqlite3"


def make_embedder(settings_or_name=None, *, cache: bool | Path = True, progress: bool | None = None) -> Embedder:
    """Build the configured embedder.

    ``settings_or_name``: a ``Settings`` (uses ``.embedder`` and ``.cache_dir``), a model name
    or path, or ``None`` for ``get_settings()``. Names of the form ``hashing-bow-<dim>`` give
    the small deterministic ``HashingBagOfWordsEmbedder`` (tests, smoke runs).
    ``cache``: ``True`` for ``<settings.cache_dir>/embeddings.sqlite3``, a directory for a
    cache there, or ``False`` for none.
    """
    from oirl.settings import Settings, get_settings

    if isinstance(settings_or_name, Settings):
        settings, name = settings_or_name, settings_or_name.embedder
    else:
        settings = get_settings()
        name = str(settings_or_name) if settings_or_name is not None else settings.embedder

    inner: Embedder
    if name.startswith("hashing-bow-"):
        inner = HashingBagOfWordsEmbedder(dim=int(name.removeprefix("hashing-bow-")))
    else:
        inner = SentenceTransformerEmbedder(name, progress=progress)
    if cache is False:
        return inner
    cache_dir = settings.cache_dir if cache is True else Path(cache)
    return CachedEmbedder(inner, EmbeddingCache(cache_dir / CACHE_FILE))
