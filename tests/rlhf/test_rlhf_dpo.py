"""DPO / IPO: the loss at the reference, learning a synthetic preference on held-out prompts, LoRA."""

import math

import pytest
import torch
from test_rlhf_reward import a_rich_pairs

from rlhf.config import DPOConfig
from rlhf.dpo import DPOTrainer, preference_loss
from rlhf.modeling import tiny_causal_lm
from rlhf.utils import undocumented_fields


def test_losses_at_the_reference_and_their_direction():
    zero = torch.zeros(3)
    loss, stats = preference_loss(zero, zero, zero, zero, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2)) and stats["rewards/accuracy"] == 0.0
    loss, _ = preference_loss(zero, zero, zero, zero, beta=0.25, loss="ipo")
    assert loss.item() == pytest.approx(4.0)  # (0 - 1/(2 tau))^2
    h = torch.tensor([0.5], requires_grad=True)
    for kind in ("sigmoid", "ipo"):
        preference_loss(h, torch.zeros(1), torch.zeros(1), torch.zeros(1), beta=0.1, loss=kind)[0].backward()
        assert h.grad.item() < 0  # a larger chosen log-ratio lowers both losses (IPO: below its 1/(2 tau) target)
        h.grad = None


@pytest.mark.parametrize("loss", ["sigmoid", "ipo"])
def test_dpo_learns_a_held_out_preference(tok, tmp_path, loss):
    train, test = a_rich_pairs(96, seed=0), a_rich_pairs(48, seed=1)
    cfg = DPOConfig(output_dir=str(tmp_path), loss=loss, beta=0.5 if loss == "ipo" else 0.1, epochs=3,
                    batch_size=16, lr=3e-3, max_response_length=12)
    history = DPOTrainer(cfg, tiny_causal_lm(tok, seed=0), tok, train, test, progress=False).train()
    evals = [h for h in history if "eval/logp_accuracy" in h]
    before, after = evals[0], evals[-1]
    assert before["eval/reward_accuracy"] == 0.0  # policy == reference: no implicit reward yet
    assert after["eval/reward_accuracy"] >= 0.8 and after["eval/logp_accuracy"] > before["eval/logp_accuracy"]
    assert (tmp_path / "policy" / "config.json").is_file()


def test_dpo_with_lora_uses_the_base_as_reference(tok, tmp_path):
    cfg = DPOConfig(output_dir=str(tmp_path), epochs=1, batch_size=8, lr=1e-2, lora_r=4, max_response_length=8,
                    lora_target_modules="c_attn,c_fc")
    trainer = DPOTrainer(cfg, tiny_causal_lm(tok, seed=0), tok, a_rich_pairs(16, 0), a_rich_pairs(8, 1),
                         progress=False)
    assert trainer.ref is None
    history = trainer.train()
    assert history[-1]["eval/reward_accuracy"] > 0  # adapters on vs off differ after training


def test_every_config_field_is_documented():
    assert undocumented_fields(DPOConfig) == []
