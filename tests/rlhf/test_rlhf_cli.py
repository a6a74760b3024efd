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
                              "--mini-batch-size", "2", "--ppo-epochs", "1", "--adaptive-kl"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ppo" / "policy" / "config.json").is_file()
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


def test_missing_inputs_and_unknown_config_fields(tmp_path):
    res = runner.invoke(app, ["ppo", "--policy", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "no such file or directory" in res.output
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"learning_rate": 1.0}))
    res = runner.invoke(app, ["raft", "--config", str(cfg)])
    assert res.exit_code == 2 and "unknown field(s) learning_rate" in res.output


def test_help_lists_field_docs():
    res = runner.invoke(app, ["ppo", "--help"])
    assert res.exit_code == 0 and "--kl-target" in res.output and "target KL" in res.output
