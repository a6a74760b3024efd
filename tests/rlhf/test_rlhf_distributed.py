"""Several processes with the same script (accelerate + DDP), exercised on CPU: 2 processes over gloo."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf.modeling import save_model, tiny_causal_lm
from rlhf.reward import RewardModel

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_two_processes_average_gradients_and_sample_their_own_responses(tok, tmp_path):
    save_model(tiny_causal_lm(tok, seed=0), tok, tmp_path / "policy")
    RewardModel(tiny_causal_lm(tok, seed=1).base_model, tok).save_pretrained(tmp_path / "rm")
    rows = [{"prompt": p, "chosen": "aaa", "rejected": "hhh"} for p in ["abc", "hello", "bad", "cafe", "dead", "beef",
                                                                         "face", "ace", "bed", "fad", "gab", "dab"]]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "pairs.jsonl").write_text((tmp_path / "prompts.jsonl").read_text())
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(HERE / "ddp_worker.py"), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1))
    assert r0["processes"] == r1["processes"] == 2 and r0["ddp"] == "DistributedDataParallel"
    for key in ("ppo_policy", "dpo_policy"):
        assert r0[key] != pytest.approx(r0["initial_policy"], rel=1e-9), key  # they did train
    assert r0["ppo_scores"] != r1["ppo_scores"]  # each rank samples its own responses...
    for key in ("ppo_policy", "ppo_value", "dpo_policy"):  # ...but the averaged gradients keep the weights equal
        assert r0[key] == pytest.approx(r1[key], rel=1e-9, abs=1e-9), key
