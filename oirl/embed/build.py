"""Build the fast encoders once from the local MiniLM weights, and keep them checksummed.

Three artefacts, each a directory ``<root>/<weights hash>/<kind>-v<recipe>`` (root: the setting
``encoder_dir``, by default ``<data home>/cache/encoders``):

- ``onnx``: the transformer with mean pooling exported by ``torch.onnx.export`` (fp32);
- ``onnx-int8``: that graph with per-channel dynamic int8 weights (``onnxruntime.quantization``;
  the default per-tensor scheme loses far more: cosine to fp32 down to 0.90 instead of 0.98);
- ``static``: one vector per vocabulary token (model2vec's idea, done here because
  ``model2vec[distill]`` pins transformers < 5.4, older than ours): each token's MiniLM
  sentence embedding as the one-token text ``[CLS] t [SEP]``, reduced by PCA to 256 dims. No
  frequency weighting: the tokenizer carries no token counts, and counting them on our own
  benchmark queries would leak test text into the encoder.

Every directory holds ``manifest.json`` with each file's SHA-256, checked on every load. The
build writes into a temporary sibling and renames it into place in one step, so two workers
starting at once never see (or leave) half an artefact: the second rename loses and its copy is
discarded. Building needs torch; loading needs only onnxruntime (or numpy for ``static``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

KINDS = ("onnx", "onnx-int8", "static")
RECIPE = 1
"""Bump when a build step changes, so old artefacts are rebuilt rather than reused."""
MANIFEST = "manifest.json"
STATIC_DIM = 256


class EncoderArtefactError(RuntimeError):
    """A cached encoder artefact is missing a file or fails its checksum."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def artefact_dir(root: Path, weights_hash: str, kind: str) -> Path:
    return Path(root) / weights_hash / f"{kind}-v{RECIPE}"


def verified(directory: Path) -> dict:
    """The manifest of a built artefact after checking every file's SHA-256 against it."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise EncoderArtefactError(f"encoder artefact {directory} has no readable {MANIFEST} ({exc}); "
                                   "delete the directory to rebuild it") from exc
    for name, expected in manifest["files"].items():
        path = directory / name
        if not path.is_file() or file_sha256(path) != expected:
            raise EncoderArtefactError(f"encoder artefact {path} is missing or fails its SHA-256 check; "
                                       f"delete {directory} to rebuild it")
    return manifest


def ensure_artefact(kind: str, model_dir: Path, weights_hash: str, root: Path) -> tuple[Path, dict]:
    """The verified artefact directory and manifest for ``kind``, built first if absent."""
    if kind not in KINDS:
        raise ValueError(f"unknown encoder kind {kind!r}; one of {', '.join(KINDS)}")
    final = artefact_dir(root, weights_hash, kind)
    if not final.exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=final.parent))
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the encoder from workers running as other users
        try:
            files = _BUILDERS[kind](Path(model_dir), tmp, root, weights_hash)
            manifest = {"kind": kind, "recipe": RECIPE, "weights": weights_hash,
                        "files": {name: file_sha256(tmp / name) for name in files}}
            manifest["sha256"] = hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
            try:
                os.rename(tmp, final)  # atomic; fails if another process got there first
            except OSError:
                if not final.exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final, verified(final)


# ------------------------------------------------------------------ builders
def _save_tokenizer(model_dir: Path, out: Path) -> None:
    """The model's fast tokenizer, truncating where sentence-transformers does and never padding
    (the bundled file pads to 128 for another use; the encoder pads per call itself)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    config = model_dir / "sentence_bert_config.json"
    max_tokens = json.loads(config.read_text())["max_seq_length"] if config.is_file() else 512
    tok.enable_truncation(max_length=max_tokens)
    tok.no_padding()
    tok.save(str(out / "tokenizer.json"))


def _mean_pooled(model_dir: Path):
    """BertModel + attention-masked mean pooling: sentence-transformers' MiniLM before Normalize."""
    import torch
    from transformers import AutoModel

    class MeanPooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(model_dir)).eval()

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state  # (b, t, d)
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (b, t, 1)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (b, d)

    return MeanPooled()


def _export_fp32(model_dir: Path, out: Path, root: Path, weights_hash: str) -> list[str]:
    import torch

    model = _mean_pooled(model_dir)
    ids = torch.tensor([[101, 7592, 2088, 102]])
    args = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "token_type_ids": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on branches that are constant for this model
        torch.onnx.export(model, args, str(out / "model.onnx"), input_names=["input_ids", "attention_mask",
                          "token_type_ids"], output_names=["embedding"], dynamic_axes=axes, opset_version=17,
                          dynamo=False)
    _save_tokenizer(model_dir, out)
    return ["model.onnx", "tokenizer.json"]


def _quantise_int8(model_dir: Path, out: Path, root: Path, weights_hash: str) -> list[str]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32, _ = ensure_artefact("onnx", model_dir, weights_hash, root)
    logging.getLogger().disabled = True  # it logs a generic "consider pre-processing" warning on the root logger
    try:
        quantize_dynamic(str(fp32 / "model.onnx"), str(out / "model.onnx"), per_channel=True,
                         weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().disabled = False
    shutil.copy(fp32 / "tokenizer.json", out / "tokenizer.json")
    return ["model.onnx", "tokenizer.json"]


def _distil_static(model_dir: Path, out: Path, root: Path, weights_hash: str) -> list[str]:
    import numpy as np
    import torch
    from sklearn.decomposition import PCA
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    vocab = tok.get_vocab_size()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    model = _mean_pooled(model_dir)
    rows = []
    with torch.no_grad():
        for start in range(0, vocab, 1024):
            ids = torch.arange(start, min(start + 1024, vocab)).unsqueeze(1)  # (b, 1)
            seq = torch.cat([torch.full_like(ids, cls), ids, torch.full_like(ids, sep)], dim=1)  # (b, 3)
            rows.append(model(seq, torch.ones_like(seq), torch.zeros_like(seq)).numpy())
    table = np.concatenate(rows)  # (vocab, 384)
    pca = PCA(n_components=min(STATIC_DIM, table.shape[1]), svd_solver="full")
    reduced = pca.fit_transform(table).astype(np.float32)  # (vocab, 256)
    np.save(out / "vectors.npy", reduced)
    _save_tokenizer(model_dir, out)
    return ["vectors.npy", "tokenizer.json"]


_BUILDERS = {"onnx": _export_fp32, "onnx-int8": _quantise_int8, "static": _distil_static}
