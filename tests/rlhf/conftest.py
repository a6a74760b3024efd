"""Fixtures for the RLHF tests: tiny tokenizers and models, saved to tmp dirs like real HF checkpoints."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tiny models on 2 shared cores: one thread is several times faster than two (no sync overhead).
torch.set_num_threads(1)

from rlhf.modeling import char_tokenizer, save_model, tiny_causal_lm  # noqa: E402

ALPHABET = "abcdefgh "


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """accelerate keeps one process-wide state (device, mixed precision); a real run sets it once per
    process, tests set it per test."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield


@pytest.fixture
def tok():
    return char_tokenizer(ALPHABET)


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory):
    """A tiny GPT-2 and its char tokenizer saved as a normal HF model directory."""
    path = tmp_path_factory.mktemp("policy")
    t = char_tokenizer(ALPHABET)
    save_model(tiny_causal_lm(t, seed=0), t, path)
    return path


@pytest.fixture(scope="session")
def bf16_llama_dir(tmp_path_factory):
    """What current checkpoints look like: a Llama-architecture model saved in bf16, whose tokenizer has
    no pad token (so loading adds one and must resize the embeddings)."""
    path = tmp_path_factory.mktemp("llama_bf16")
    t = char_tokenizer(ALPHABET, with_pad=False)
    t.pad_token = None
    model = tiny_causal_lm(t, arch="llama", seed=0).to(torch.bfloat16)
    model.config.pad_token_id = None
    save_model(model, t, path)
    return path


@pytest.fixture
def mirror():
    root = os.environ.get("OIRL_TEST_MIRROR")
    if not root:
        pytest.skip("OIRL_TEST_MIRROR is not set")
    return root
