"""The ONNX Runtime and static encoders: identity, determinism, build-once cache, refusal.

Most tests run on a tiny randomly initialised BERT saved with MiniLM's tokenizer, so export,
quantisation and distillation take about a second; one test checks the real MiniLM export
against the torch encoder (the default's promise: the same vectors, the same identity).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from oirl.embed import EncoderArtefactError, OnnxEmbedder, StaticEmbedder, make_embedder
from oirl.embed.build import MANIFEST, ensure_artefact
from oirl.embed.sentence import resolve_model_path, weights_hash

TEXTS = ["How many apples does Tom have if he buys 3 more?", "Tom has how many apples?",
         "Let's think step by step.", "A train leaves at 3 pm at 60 km/h; when does it arrive 150 km away?", ""]


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer (random weights, fixed seed)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(out)
    minilm = Path(resolve_model_path("all-MiniLM-L6-v2"))
    for name in ("tokenizer.json", "sentence_bert_config.json"):
        shutil.copy(minilm / name, out / name)
    return out


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "encoders"


def test_fp32_keeps_the_plain_identity_and_int8_static_get_their_own(tiny_bert, root):
    fp32, int8 = OnnxEmbedder(str(tiny_bert), "onnx", root), OnnxEmbedder(str(tiny_bert), "onnx-int8", root)
    static = StaticEmbedder(str(tiny_bert), root)
    plain = weights_hash(tiny_bert)
    assert (fp32.identity.name, fp32.identity.revision, fp32.identity.dim) == (str(tiny_bert), plain, 32)
    assert int8.identity.name == f"{tiny_bert}+onnx-int8" and int8.identity.revision.startswith(plain + ".")
    assert static.identity.name == f"{tiny_bert}+static" and static.identity.dim == 32
    assert len({fp32.identity.revision, int8.identity.revision, static.identity.revision}) == 3
    for emb in (fp32, int8, static):
        v = emb.encode(TEXTS)
        assert v.shape == (len(TEXTS), emb.identity.dim) and v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
        assert emb.encode([]).shape == (0, emb.identity.dim)


def test_identity_names_the_tier_so_make_embedder_rebuilds_it(tiny_bert, root, monkeypatch):
    monkeypatch.setenv("OIRL_ENCODER_DIR", str(root))
    int8 = OnnxEmbedder(str(tiny_bert), "onnx-int8", root)
    again = make_embedder(int8.identity.name, cache=False)  # a model's recorded name -> the same encoder
    assert again.identity == int8.identity


def test_int8_vector_does_not_depend_on_batch_companions(tiny_bert, root):
    int8 = OnnxEmbedder(str(tiny_bert), "onnx-int8", root, sub_batch=32)  # asks for batches; int8 refuses
    assert int8.sub_batch == 1
    alone = int8.encode([TEXTS[0]])[0]
    for companions in (TEXTS, TEXTS[::-1], [TEXTS[3]] * 7 + [TEXTS[0]]):
        inside = int8.encode(companions)[companions.index(TEXTS[0])]
        assert np.array_equal(alone, inside)


def test_fp32_sub_batches_agree_with_single_calls(tiny_bert, root):
    single = OnnxEmbedder(str(tiny_bert), "onnx", root, sub_batch=1).encode(TEXTS)
    batched = OnnxEmbedder(str(tiny_bert), "onnx", root, sub_batch=4).encode(TEXTS)
    np.testing.assert_allclose(single, batched, atol=1e-5)


def test_a_worker_that_loses_the_build_race_uses_the_winners_copy(tiny_bert, root, monkeypatch):
    """Two workers start at once: both build into temporary directories, one rename wins. Here the
    loser's build runs a whole other build (the winner) before its own rename, deterministically."""
    from oirl.embed import build

    real = build._BUILDERS["onnx"]
    calls = []

    def racing(model_dir, out, root_, weights):
        calls.append(out)
        if len(calls) == 1:  # the other worker finishes first
            ensure_artefact("onnx", model_dir, weights, root_)
        return real(model_dir, out, root_, weights)

    monkeypatch.setitem(build._BUILDERS, "onnx", racing)
    final, manifest = ensure_artefact("onnx", tiny_bert, weights_hash(tiny_bert), root)
    assert len(calls) == 2 and final == build.artefact_dir(root, weights_hash(tiny_bert), "onnx")
    assert [p.name for p in final.parent.iterdir()] == ["onnx-v1"]  # the loser's copy is gone
    assert manifest["files"] == json.loads((final / MANIFEST).read_text())["files"]


def test_built_once_then_verified_and_a_corrupt_file_is_refused(tiny_bert, root):
    first, manifest = ensure_artefact("onnx", tiny_bert, weights_hash(tiny_bert), root)
    stamp = (first / "model.onnx").stat().st_mtime_ns
    again, _ = ensure_artefact("onnx", tiny_bert, weights_hash(tiny_bert), root)
    assert again == first and (first / "model.onnx").stat().st_mtime_ns == stamp  # not rebuilt
    assert json.loads((first / MANIFEST).read_text())["files"]["model.onnx"] == manifest["files"]["model.onnx"]
    with open(first / "model.onnx", "r+b") as fh:  # flip one byte
        fh.seek(100)
        b = fh.read(1)
        fh.seek(100)
        fh.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(EncoderArtefactError, match="SHA-256"):
        OnnxEmbedder(str(tiny_bert), "onnx", root).encode(["x"])


def test_a_model_trained_on_fp32_is_refused_by_the_int8_encoder(tiny_bert, root):
    from oirl.reward import fit_reward_model
    from oirl.select import SelectionPolicy, select_prompts

    fp32, int8 = OnnxEmbedder(str(tiny_bert), "onnx", root), OnnxEmbedder(str(tiny_bert), "onnx-int8", root)
    logs = [{"query": f"q{i} {TEXTS[i % 4]}", "prompt": p, "reward": float((i + j) % 2)}
            for i in range(12) for j, p in enumerate(["A", "B"])]
    import pandas as pd

    trained = fit_reward_model(pd.DataFrame(logs), fp32, params={"n_rounds": 5, "min_data_in_leaf": 1})
    policy = SelectionPolicy(default_prompt="A", default_train_accuracy=0.5)
    assert select_prompts(trained.model, fp32, ["q"], ["A", "B"], policy)
    with pytest.raises(ValueError, match="differs from the model"):
        select_prompts(trained.model, int8, ["q"], ["A", "B"], policy)


@pytest.mark.slow
def test_minilm_onnx_fp32_matches_torch_and_shares_its_identity():
    torch_emb = make_embedder("all-MiniLM-L6-v2", cache=False, encoder="torch")
    onnx_emb = make_embedder("all-MiniLM-L6-v2", cache=False)  # the default encoder
    assert isinstance(onnx_emb, OnnxEmbedder) and onnx_emb.identity == torch_emb.identity
    cos = np.sum(torch_emb.encode(TEXTS) * onnx_emb.encode(TEXTS), axis=1)
    assert cos.min() >= 0.99999
