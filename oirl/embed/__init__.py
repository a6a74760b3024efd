"""Sentence embeddings for queries and prompts, with a persistent content-hash cache.

Entry point: ``make_embedder(settings_or_name)`` returns an ``Embedder`` (``.encode(texts)``
→ unit-norm float32 ``(n, dim)``, ``.identity`` → name + weights hash + dim), wrapped in the
on-disk cache unless ``cache=False``. ``settings.encoder`` picks how it runs: ONNX Runtime fp32
(default, the torch encoder's vectors and identity), int8, static token vectors, or torch.
"""

from __future__ import annotations

from pathlib import Path

from oirl.embed.base import Embedder, EmbedderIdentity, HashingBagOfWordsEmbedder, l2_normalise
from oirl.embed.build import EncoderArtefactError
from oirl.embed.cache import CachedEmbedder, EmbeddingCache, text_sha256
from oirl.embed.fast import BACKENDS, OnnxEmbedder, StaticEmbedder
from oirl.embed.sentence import DEFAULT_EMBEDDER, SentenceTransformerEmbedder

__all__ = [
    "BACKENDS",
    "EncoderArtefactError",
    "OnnxEmbedder",
    "StaticEmbedder",
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


def make_embedder(settings_or_name=None, *, cache: bool | Path = True, progress: bool | None = None,
                  encoder: str | None = None, threads: int | None = None) -> Embedder:
    """Build the configured embedder.

    ``settings_or_name``: a ``Settings`` (uses ``.embedder``, ``.encoder`` and ``.cache_dir``), a
    model name or path, or ``None`` for ``get_settings()``. A name may carry its tier as a
    model's identity does (``all-MiniLM-L6-v2+onnx-int8``). Names of the form ``hashing-bow-<dim>``
    give the small deterministic ``HashingBagOfWordsEmbedder`` (tests, smoke runs).
    ``encoder``: ``onnx`` | ``onnx-int8`` | ``static`` | ``torch``; default: the name's tier, else
    ``settings.encoder``. ``cache``: ``True`` for ``<settings.cache_dir>/embeddings.sqlite3``,
    a directory for a cache there, or ``False`` for none. ``threads``: the ONNX runtime's threads (default:
    this process's thread plan; a Dask worker passes its own thread count).
    """
    from oirl.settings import Settings, get_settings
    from oirl.threads import current_plan

    if isinstance(settings_or_name, Settings):
        settings, name = settings_or_name, settings_or_name.embedder
    else:
        settings = get_settings()
        name = str(settings_or_name) if settings_or_name is not None else settings.embedder
    base, _, tier = name.partition("+")
    if tier and tier in BACKENDS:
        name, encoder = base, encoder or tier
    encoder = encoder or settings.encoder
    if encoder not in BACKENDS:
        raise ValueError(f"unknown encoder {encoder!r}; one of {', '.join(BACKENDS)}")

    inner: Embedder
    if name.startswith("hashing-bow-"):
        inner = HashingBagOfWordsEmbedder(dim=int(name.removeprefix("hashing-bow-")))
    elif encoder == "torch":
        inner = SentenceTransformerEmbedder(name, progress=progress)
    elif encoder == "static":
        inner = StaticEmbedder(name, settings.resolved_encoder_dir)
    else:
        inner = OnnxEmbedder(name, encoder, settings.resolved_encoder_dir, threads=threads or current_plan().encoder,
                             sub_batch=settings.encoder_sub_batch, progress=progress)
    if cache is False:
        return inner
    cache_dir = settings.cache_dir if cache is True else Path(cache)
    return CachedEmbedder(inner, EmbeddingCache(cache_dir / CACHE_FILE))
