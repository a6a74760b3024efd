"""RAFT end to end on tiny models: best-of-K fine-tuning raises a known synthetic reward."""

import pytest
import torch

from rlhf.modeling import tiny_causal_lm
from rlhf.raft import RAFTConfig, RAFTTrainer
from rlhf.utils import read_jsonl, undocumented_fields

PROMPTS = ["abc", "hello", "bad", "cafe", "dead", "beef", "face", "ace"]


def a_fraction(prompts, texts):
    return torch.tensor([t.count("a") / max(len(t), 1) for t in texts])


@pytest.mark.parametrize("keep", ["best", "top"])
def test_raft_raises_synthetic_reward(tok, tmp_path, keep):
    cfg = RAFTConfig(output_dir=str(tmp_path), iterations=15, batch_size=16, k=4, keep=keep, max_new_tokens=8,
                     lr=3e-3)
    history = RAFTTrainer(cfg, tiny_causal_lm(tok, seed=0), tok, a_fraction, PROMPTS, progress=False).train()
    assert history[-1]["objective/scores"] > history[0]["objective/scores"] + 0.4
    assert all(h["objective/scores_kept"] >= h["objective/scores"] for h in history)  # selection helps
    assert max(h["objective/kl"] for h in history) < 10.0
    logged = read_jsonl(tmp_path / "metrics.jsonl")
    assert len(logged) == 15 and {"objective/kl", "objective/scores", "loss/sft"} <= set(logged[0])
    assert (tmp_path / "policy" / "config.json").is_file()


def test_keeps_one_per_prompt_or_the_top_fraction(tok, tmp_path):
    scores = iter([torch.arange(8.0)])  # 2 prompts x K=4: best are indices 3 and 7
    cfg = RAFTConfig(output_dir=str(tmp_path), batch_size=2, k=4, max_new_tokens=3, missing_eos_penalty=0.0)
    trainer = RAFTTrainer(cfg, tiny_causal_lm(tok), tok, lambda p, t: next(scores), PROMPTS, progress=False)
    kept, stats = trainer.sample_and_rank(["ab", "cd"])
    assert kept["query"].shape[0] == 2 and stats["objective/scores_kept"] == 5.0  # mean of 3 and 7
    scores = iter([torch.arange(8.0)])
    trainer.cfg.keep, trainer.cfg.top_fraction = "top", 0.5
    kept, stats = trainer.sample_and_rank(["ab", "cd"])
    assert kept["query"].shape[0] == 4 and stats["objective/scores_kept"] == 5.5  # mean of 4..7


def test_every_config_field_is_documented():
    assert undocumented_fields(RAFTConfig) == []


def test_resume_continues_exactly(tok, tmp_path):
    def trainer(out, iterations, resume=False):
        cfg = RAFTConfig(output_dir=str(out), iterations=iterations, batch_size=4, k=2, max_new_tokens=4, lr=3e-3,
                         mini_batch_size=4, resume=resume, warmup_steps=3)  # warm-up spans the resume
        return RAFTTrainer(cfg, tiny_causal_lm(tok, seed=0), tok, a_fraction, PROMPTS, progress=False)

    straight = trainer(tmp_path / "a", 4).train()
    trainer(tmp_path / "b", 2).train()
    resumed = trainer(tmp_path / "b", 4, resume=True)
    assert resumed.iteration == 2
    tail = resumed.train()
    assert [h["update"] for h in tail] == [3, 4]
    for a, b in zip(straight[2:], tail, strict=True):
        for key in ("objective/scores", "objective/kl", "loss/sft", "lr"):
            assert a[key] == pytest.approx(b[key], abs=1e-6), key
