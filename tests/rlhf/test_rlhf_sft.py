"""SFT: response tokens are the only targets, held-out NLL falls, the command reads files."""

import json

from rlhf.config import SFTConfig
from rlhf.sft import build_trainer
from rlhf.utils import undocumented_fields


def test_sft_lowers_held_out_nll_from_a_file(tiny_policy_dir, tmp_path):
    rows = [{"prompt": f"{c}{d}", "response": "aaa" + c} for c in "bcdefgh" for d in "bcdefgh"]
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = SFTConfig(policy=str(tiny_policy_dir), data=str(data), output_dir=str(tmp_path / "sft"), epochs=3,
                    batch_size=8, lr=3e-3, test_fraction=0.2, gradient_accumulation_steps=2)
    history = build_trainer(cfg, progress=False).train()
    evals = [h["eval/nll"] for h in history if "eval/nll" in h]
    assert evals[-1] < evals[0] - 1.0, evals
    assert (tmp_path / "sft" / "policy" / "config.json").is_file()


def test_every_config_field_is_documented():
    assert undocumented_fields(SFTConfig) == []
