"""Fixtures for the RLHF tests: tiny tokenizers and models, saved to tmp dirs like real HF checkpoints."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tiny models on 2 shared cores: one thread is several times faster than two (no sync overhead).
torch.set_num_threads(1)

from rlhf.modeling import char_tokenizer, save_model, tiny_causal_lm  # noqa: E402

ALPHABET = "abcdefgh "


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


@pytest.fixture
def mirror():
    root = os.environ.get("OIRL_TEST_MIRROR")
    if not root:
        pytest.skip("OIRL_TEST_MIRROR is not set")
    return root
