"""`oirl train / evaluate / select`: help, clear errors for bad input, select on a saved model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from oirl.cli import app
from oirl.embed import HashingBagOfWordsEmbedder
from oirl.reward import fit_reward_model
from oirl.select import calibrate_policy

runner = CliRunner()


def test_help_describes_each_command():
    for cmd, words in (("train", "--backend"), ("evaluate", "--protocol"), ("select", "--candidates")):
        result = runner.invoke(app, [cmd, "--help"])
        assert result.exit_code == 0 and words in result.output


def test_bad_input_fails_with_a_clear_message():
    result = runner.invoke(app, ["train", "--dataset", "imagenet"])
    assert result.exit_code == 2 and "unknown dataset 'imagenet'" in result.output
    result = runner.invoke(app, ["train", "--dataset", "gsm8k", "--prompts", "0,x"])
    assert result.exit_code == 2 and "bad prompt list" in result.output
    result = runner.invoke(app, ["evaluate", "--dataset", "gsm8k", "--prompts", "0,0,1"])
    assert result.exit_code == 2 and "bad prompt list" in result.output
    result = runner.invoke(app, ["evaluate", "--dataset", "gsm8k", "--protocol", "leaky"])
    assert result.exit_code == 2 and "unknown protocol" in result.output
    result = runner.invoke(app, ["train", "--dataset", "gsm8k", "--backend", "svm"])
    assert result.exit_code == 2 and "unknown backend" in result.output


def test_select_without_any_model_says_what_to_do():
    result = runner.invoke(app, ["select", "How many apples?"])
    assert result.exit_code == 2 and "oirl train" in result.output


def test_select_ranks_candidates_from_a_saved_artefact(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"query": f"{k} question {i} about {k}s", "prompt": f"Use the {g} method: ",
             "correct": (k == g) != (rng.random() < 0.1)}
            for i in range(60) for k in (("apple", "banana")[i % 2],) for g in ("apple", "banana")]
    trained = fit_reward_model(pd.DataFrame(rows), HashingBagOfWordsEmbedder(32),
                               params={"n_rounds": 50, "min_data_in_leaf": 2}, features="concat")
    policy = calibrate_policy(trained)
    trained.model.save(tmp_path / "m", extra={"selection_policy": policy.to_dict(), "prompts": trained.table.prompts})
    result = runner.invoke(app, ["select", "banana question 7 about bananas", "--model", str(tmp_path / "m"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["prompt"] == "Use the banana method: " and len(out["ranking"]) == 2
    result = runner.invoke(app, ["select", "apple question 8 about apples", "--model", str(tmp_path / "m"),
                                 "-c", "Use the apple method: ", "-c", "Something unseen: "])
    assert result.exit_code == 0 and "chosen:" in result.output and "Something unseen" in result.output
