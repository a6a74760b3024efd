"""The fast encoders: MiniLM on ONNX Runtime (fp32 or int8) and static token vectors.

``OnnxEmbedder("onnx")`` gives today's vectors (cosine to the torch encoder ≥ 0.99999), so it
keeps the torch encoder's identity and every cached vector and trained model stays valid.
``onnx-int8`` and ``static`` give other vectors: their identity names the tier and carries the
built artefact's checksum, so a model trained on one is refused by a service running another.

Padding is the cost to avoid on a CPU: one call padded to the longest of 32 texts is slower
than 32 single calls. Texts are sorted by length and encoded in small sub-batches of similar
length (``sub_batch``). int8 always encodes each text alone, because its activation scales
are computed per call: inside a batch a text's vector would depend on its companions.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

from oirl.embed.base import EmbedderIdentity, l2_normalise
from oirl.embed.build import ensure_artefact
from oirl.embed.sentence import resolve_model_path, weights_hash

BACKENDS = ("onnx", "onnx-int8", "static", "torch")
DEFAULT_SUB_BATCH = 4
"""Texts per ONNX call after sorting by length (benchmarks/encoder_backends.py measures it)."""


def _tier_identity(name: str, kind: str, weights: str, manifest: dict, dim: int) -> EmbedderIdentity:
    if kind == "onnx":  # same vectors as torch: same identity, same caches, same models
        return EmbedderIdentity(name=name, revision=weights, dim=dim)
    return EmbedderIdentity(name=f"{name}+{kind}", revision=f"{weights}.{manifest['sha256'][:12]}", dim=dim)


class _Built:
    """Resolve the local weights and build (once) or verify the artefact for one tier."""

    def __init__(self, name: str, kind: str, root: Path):
        self.name, self.kind = name, kind
        local = Path(resolve_model_path(name))
        if not local.is_dir():
            raise ValueError(f"the {kind} encoder builds from local weights; {name!r} is not a directory "
                             "(use the bundled all-MiniLM-L6-v2, a local path, or OIRL_ENCODER=torch)")
        self.weights = weights_hash(local)
        self.directory, self.manifest = ensure_artefact(kind, local, self.weights, root)

    @cached_property
    def tokenizer(self):
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.directory / "tokenizer.json"))


class OnnxEmbedder:
    """MiniLM exported to ONNX (``kind`` ``onnx`` = fp32 or ``onnx-int8``); unit-norm float32."""

    def __init__(self, name: str, kind: str, root: Path, threads: int = 1, sub_batch: int = DEFAULT_SUB_BATCH,
                 progress: bool | None = None):
        self.name, self.kind, self.root, self.threads = name, kind, Path(root), threads
        self.sub_batch = 1 if kind == "onnx-int8" else max(1, sub_batch)
        self.progress = progress
        """``None``: a progress bar for long runs (more than 2,000 texts)."""

    @cached_property
    def built(self) -> _Built:
        return _Built(self.name, self.kind, self.root)

    @cached_property
    def session(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        # Idle pool threads must sleep, not spin: torch and LightGBM share these cores (the same
        # reason the service sets OMP_WAIT_POLICY=PASSIVE, app/__init__.py).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(self.built.directory / "model.onnx"), opts,
                                    providers=["CPUExecutionProvider"])

    @cached_property
    def identity(self) -> EmbedderIdentity:
        dim = int(self.session.get_outputs()[0].shape[-1])
        return _tier_identity(self.name, self.kind, self.built.weights, self.built.manifest, dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = np.empty((len(texts), self.identity.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self.built.tokenizer.encode_batch(texts)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        show = self.progress if self.progress is not None else len(texts) > 2000
        for start in tqdm(range(0, len(texts), self.sub_batch), desc=f"embed ({self.name}, {self.kind})",
                          unit="call", disable=not show, mininterval=2):
            idx = order[start : start + self.sub_batch]
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)  # (b, t), right-padded with [PAD] = 0
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(encodings[i].ids)
                ids[row, :n], mask[row, :n] = encodings[i].ids, 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            out[idx] = self.session.run(None, feeds)[0]  # (b, d) mean-pooled
        return l2_normalise(out)


class StaticEmbedder:
    """Mean of per-token vectors distilled from MiniLM (no transformer at run time); unit-norm."""

    def __init__(self, name: str, root: Path):
        self.name, self.root = name, Path(root)

    @cached_property
    def built(self) -> _Built:
        return _Built(self.name, "static", self.root)

    @cached_property
    def vectors(self) -> np.ndarray:
        return np.load(self.built.directory / "vectors.npy")  # (vocab, 256)

    @cached_property
    def identity(self) -> EmbedderIdentity:
        return _tier_identity(self.name, "static", self.built.weights, self.built.manifest, self.vectors.shape[1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.vectors.shape[1]), dtype=np.float32)
        for i, enc in enumerate(self.built.tokenizer.encode_batch(texts, add_special_tokens=False)):
            if enc.ids:
                out[i] = self.vectors[enc.ids].mean(axis=0)
        out[np.all(out == 0, axis=1), 0] = 1.0  # an empty text gets a fixed unit vector
        return l2_normalise(out)
