"""The `rlhf` CLI: train-rm / ppo / raft from files and flags, clear errors for bad data."""

import json

import pytest
from typer.testing import CliRunner

from rlhf.cli import app
from rlhf.reward import RewardModel

runner = CliRunner()


def pairs_file(path, n=24, extra=()):
    rows = [{"prompt": f"p{i % 6}", "chosen": "aaa" + "b" * (i % 3), "rejected": "ggg" + "h" * (i % 2)}
            for i in range(n)] + list(extra)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_train_rm_then_ppo_then_raft(tiny_policy_dir, tmp_path):
    data = pairs_file(tmp_path / "pairs.jsonl", extra=[{"prompt": "p1", "chosen": "same", "rejected": "same"}])
    cfg = tmp_path / "rm.json"
    cfg.write_text(json.dumps({"epochs": 1, "batch_size": 8, "max_length": 16}))
    res = runner.invoke(app, ["train-rm", "--config", str(cfg), "--data", str(data), "--backbone",
                              str(tiny_policy_dir), "--output-dir", str(tmp_path / "rm"), "--lr", "1e-3"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["train_pairs"] + summary["eval/pairs"] == 24  # the identical pair was skipped
    RewardModel.from_pretrained(tmp_path / "rm")

    common = ["--policy", str(tiny_policy_dir), "--reward-model", str(tmp_path / "rm"), "--prompts", str(data),
              "--batch-size", "4", "--max-new-tokens", "4"]
    res = runner.invoke(app, ["ppo", *common, "--output-dir", str(tmp_path / "ppo"), "--total-updates", "2",
                              "--mini-batch-size", "2", "--ppo-epochs", "1", "--adaptive-kl", "--no-normalize-scores"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ppo" / "policy" / "config.json").is_file()
    saved = json.loads((tmp_path / "ppo" / "checkpoint" / "config.json").read_text())
    assert saved["normalize_scores"] is False and saved["adaptive_kl"] is True
    assert len((tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()) == 2
    res = runner.invoke(app, ["raft", *common, "--output-dir", str(tmp_path / "raft"), "--iterations", "2",
                              "--k", "2"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout[res.stdout.index("{"):])["updates"] == 2


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ('{"prompt": "p", "chosen": "a"}\n', "missing column(s) rejected"),
    ('{"prompt": "p", "chosen": "a", "rejected": "a"}\n', "no usable preference pairs"),
])
def test_train_rm_bad_data_is_a_clear_error(tmp_path, content, message):
    data = tmp_path / "bad.jsonl"
    data.write_text(content)
    res = runner.invoke(app, ["train-rm", "--data", str(data), "--output-dir", str(tmp_path / "rm")])
    assert res.exit_code == 2 and message in res.output, res.output


def test_dpo_grpo_sft_commands(tiny_policy_dir, tmp_path):
    data = pairs_file(tmp_path / "pairs.jsonl")
    res = runner.invoke(app, ["dpo", "--policy", str(tiny_policy_dir), "--data", str(data), "--output-dir",
                              str(tmp_path / "dpo"), "--loss", "ipo", "--max-pairs", "8", "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["train_pairs"] == 8 and summary["after"]["eval/pairs"] > 0
    rm = tmp_path / "rm"
    RewardModel.from_backbone(tiny_policy_dir).save_pretrained(rm)
    res = runner.invoke(app, ["grpo", "--policy", str(tiny_policy_dir), "--reward-model", str(rm), "--prompts",
                              str(data), "--output-dir", str(tmp_path / "grpo"), "--total-updates", "2",
                              "--batch-size", "2", "--group-size", "2", "--mini-batch-size", "4",
                              "--max-new-tokens", "4"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout[res.stdout.index("{"):])["updates"] == 2
    res = runner.invoke(app, ["sft", "--policy", str(tiny_policy_dir), "--data", str(data), "--output-dir",
                              str(tmp_path / "sft"), "--test-fraction", "0.3"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "sft" / "policy" / "config.json").is_file()


def test_train_rm_max_pairs_caps_training_only(tiny_policy_dir, tmp_path):
    data = pairs_file(tmp_path / "pairs.jsonl")
    res = runner.invoke(app, ["train-rm", "--data", str(data), "--backbone", str(tiny_policy_dir), "--max-pairs", "5",
                              "--output-dir", str(tmp_path / "rm"), "--max-length", "16"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["train_pairs"] == 5 and summary["train_pairs_available"] + summary["eval/pairs"] == 24


def test_every_wrong_path_is_a_clear_error(tiny_policy_dir, tmp_path):
    data = pairs_file(tmp_path / "pairs.jsonl")
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    base = ["--prompts", str(data), "--policy", str(tiny_policy_dir), "--reward-model", str(tiny_policy_dir)]
    cases = [
        (["ppo", "--policy", str(tmp_path / "nope")], "--reward-model is required"),
        (["ppo", *base, "--policy", str(tmp_path / "nope")], "no such file or directory"),
        (["ppo", *base, "--policy", str(not_a_model)], "not a Hugging Face model directory"),
        (["raft", *base, "--reward-model", str(data)], "is a file; it must be a model directory"),
        (["grpo", *base], "is not a reward model"),
        (["ppo", *base, "--prompts", str(tmp_path)], "is a directory; expected a JSONL file"),
        (["train-rm", "--data", str(data), "--backbone", str(data)], "is a file"),
        (["ppo", *base, "--mixed-precision", "fp8"], "mixed_precision must be one of"),
    ]
    for args, message in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and message in res.output, (args, res.output)


def test_help_is_fast_shows_required_and_boolean_switches():
    import subprocess
    import sys

    code = "import sys, rlhf.cli; print(sorted(m for m in ('torch', 'transformers', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # nothing heavy is imported to parse flags
    res = runner.invoke(app, ["ppo", "--help"], terminal_width=200)
    assert "[required] local HF causal LM" in res.output and "--no-normalize-scores" in res.output
    assert "(default: '')" not in res.output and "[default: 0.05]" in res.output


def test_missing_inputs_and_unknown_config_fields(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"learning_rate": 1.0}))
    res = runner.invoke(app, ["raft", "--config", str(cfg)])
    assert res.exit_code == 2 and "unknown field(s) learning_rate" in res.output


def test_help_lists_field_docs():
    res = runner.invoke(app, ["ppo", "--help"])
    assert res.exit_code == 0 and "--kl-target" in res.output and "target KL" in res.output
