"""Real-model plumbing on CPU through accelerate: bf16 checkpoints, mixed precision, LoRA, accumulation."""

import json

import pytest
import torch
from test_rlhf_reward import a_rich_pairs

from rlhf.config import PPOConfig, RAFTConfig, RewardConfig
from rlhf.modeling import load_causal_lm
from rlhf.ppo import build_trainer as build_ppo
from rlhf.raft import build_trainer as build_raft
from rlhf.reward import RewardModel, train_reward_model
from rlhf.runtime import is_peft

PROMPTS = ["abc", "hello", "bad", "cafe", "dead", "beef", "face", "ace"]


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return path


@pytest.fixture
def bf16_rm_dir(bf16_llama_dir, tmp_path):
    """A reward model on the bf16 Llama, itself saved in bf16."""
    rm = RewardModel.from_backbone(bf16_llama_dir)
    rm.to(torch.bfloat16).save_pretrained(tmp_path / "rm")
    return tmp_path / "rm"


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().float().clone() for n, p in model.named_parameters()}


def changed_share(before: dict, after: dict) -> float:
    """Share of weight entries that moved at all."""
    changed = sum((before[n] != after[n]).sum().item() for n in before)
    return changed / sum(t.numel() for t in before.values())


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_raft_on_a_bf16_checkpoint_trains_fp32_master_weights(bf16_llama_dir, bf16_rm_dir, prompts_file, tmp_path,
                                                              precision):
    cfg = RAFTConfig(policy=str(bf16_llama_dir), reward_model=str(bf16_rm_dir), prompts=str(prompts_file),
                     output_dir=str(tmp_path / "raft"), iterations=5, batch_size=4, k=2, max_new_tokens=4,
                     mini_batch_size=4, sft_epochs=1, lr=1e-4, mixed_precision=precision)
    trainer = build_raft(cfg, progress=False)
    assert all(p.dtype == torch.float32 for p in trainer.policy.parameters())
    before = snapshot(trainer.policy)
    trainer.train()
    # pure bf16 rounded ~90% of these updates away; fp32 master weights keep them all
    assert changed_share(before, snapshot(trainer.policy)) > 0.9


def test_ppo_on_bf16_checkpoints_with_bf16_autocast(bf16_llama_dir, bf16_rm_dir, prompts_file, tmp_path):
    cfg = PPOConfig(policy=str(bf16_llama_dir), reward_model=str(bf16_rm_dir), prompts=str(prompts_file),
                    output_dir=str(tmp_path / "ppo"), total_updates=2, batch_size=4, mini_batch_size=2, ppo_epochs=1,
                    max_new_tokens=4, mixed_precision="bf16", gradient_accumulation_steps=2, warmup_steps=3,
                    lr_schedule="cosine", gradient_checkpointing=True)
    trainer = build_ppo(cfg, progress=False)
    assert trainer.ref.dtype == torch.bfloat16  # frozen: loaded in the autocast dtype
    assert all(any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
               for model in (trainer.policy, trainer.value_model))
    history = trainer.train()
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(h["loss/policy"])) for h in history)
    assert history[0]["lr"] < cfg.lr  # still warming up after the first update's 2 optimiser steps
    policy, tok = load_causal_lm(tmp_path / "ppo" / "policy")
    assert policy.get_input_embeddings().num_embeddings == len(tok) == 13  # the added pad is saved with it


def test_reward_model_on_a_bf16_backbone_with_accumulation_and_checkpointing(bf16_llama_dir):
    model = RewardModel.from_backbone(bf16_llama_dir, with_lm_head=True)
    cfg = RewardConfig(epochs=1, batch_size=8, lr=1e-3, max_length=24, mixed_precision="bf16", imitation_coef=0.1,
                       gradient_accumulation_steps=2, gradient_checkpointing=True, warmup_steps=1)
    history = train_reward_model(model, a_rich_pairs(32, 0), a_rich_pairs(16, 1), cfg, progress=False)
    assert len([h for h in history if "loss/total" in h]) == 4 and history[-1]["eval/pairs"] == 16
    assert model.max_length == 24 and all(p.dtype == torch.float32 for p in model.parameters())


def test_ppo_with_lora_keeps_one_base_copy_and_trains_only_adapters(bf16_llama_dir, bf16_rm_dir, prompts_file,
                                                                    tmp_path):
    cfg = PPOConfig(policy=str(bf16_llama_dir), reward_model=str(bf16_rm_dir), prompts=str(prompts_file),
                    output_dir=str(tmp_path / "ppo"), total_updates=2, batch_size=4, mini_batch_size=4, ppo_epochs=2,
                    max_new_tokens=4, lora_r=4, lr=1e-2, mixed_precision="bf16", gradient_checkpointing=True)
    trainer = build_ppo(cfg, progress=False)
    assert trainer.ref is None and is_peft(trainer.policy)  # the reference is the policy with adapters off
    base = {n: p for n, p in snapshot(trainer.policy).items() if "lora_" not in n}
    lora = {n: p for n, p in snapshot(trainer.policy).items() if "lora_" in n}
    assert lora and all(p.dtype == torch.bfloat16 for n, p in trainer.policy.named_parameters() if "lora_" not in n)
    trainer.step()
    after = snapshot(trainer.policy)
    assert all(torch.equal(base[n], after[n]) for n in base)
    assert changed_share(lora, {n: after[n] for n in lora}) > 0.4  # B starts at 0: some adapters move per step
    first = trainer.rollout(PROMPTS[:4])
    assert first["stats"]["objective/kl"] != 0.0  # adapters on vs off now differ
    trainer.train()
    merged, _ = load_causal_lm(tmp_path / "ppo" / "policy")  # a plain HF model, adapters merged
    original, _ = load_causal_lm(bf16_llama_dir)
    q_proj = [m.model.layers[0].self_attn.q_proj.weight for m in (merged, original)]
    assert not torch.equal(*q_proj)


def test_reward_model_with_lora_trains_adapters_and_head_and_saves_merged(tok, tmp_path):
    from rlhf.modeling import tiny_causal_lm

    rm = RewardModel(tiny_causal_lm(tok, arch="llama", seed=0).base_model, tok)
    base = {n: p.detach().clone() for n, p in rm.model.named_parameters()}
    cfg = RewardConfig(epochs=2, batch_size=8, lr=1e-2, max_length=16, lora_r=4)
    train_reward_model(rm, a_rich_pairs(32, 0), [], cfg, progress=False)
    assert is_peft(rm.model)
    frozen = {n.replace(".base_layer", ""): p for n, p in rm.core.named_parameters() if "lora_" not in n}
    assert frozen.keys() == base.keys() and all(torch.equal(base[n], p) for n, p in frozen.items())
    scores = rm.score_texts(["ab", "cd"], ["aaa", "bbb"])
    rm.save_pretrained(tmp_path / "rm")  # adapters merged into a plain backbone
    loaded = RewardModel.from_pretrained(tmp_path / "rm")
    assert not is_peft(loaded.model)
    assert torch.allclose(loaded.score_texts(["ab", "cd"], ["aaa", "bbb"]), scores, atol=1e-4)
    assert not torch.allclose(loaded.score_texts(["ab"], ["aaa"]),
                              RewardModel(tiny_causal_lm(tok, arch="llama", seed=0).base_model, tok,
                                          rm.head).score_texts(["ab"], ["aaa"]), atol=1e-4)  # the merge moved it
