"""`oirl tasks / data import / train / models / select / evaluate` on production-shaped logs:
one prompt per query chosen by a random policy (with its propensity), repeated tries."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from oirl.cli import app
from oirl.jobs import EvaluationParams, RetrainParams

runner = CliRunner()
APPLE, BANANA = "Use the apple method: ", "Use the banana method: "


def invoke(*args):
    return runner.invoke(app, list(args))


def production_csv(path, n=160, seed=0):
    """Each fruit question tried with one prompt drawn uniformly (propensity 0.5); 30% tried twice."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        kind = ("apple", "banana")[i % 2]
        prompt = (APPLE, BANANA)[rng.integers(0, 2)]
        for _ in range(1 + (rng.random() < 0.3)):
            good = prompt.startswith(f"Use the {kind}")
            rows.append({"query": f"{kind} question {i} about {kind}s and number {i}", "prompt": prompt,
                         "correct": str(good != (rng.random() < 0.1)).lower(), "propensity": 0.5,
                         "llm": "toy-llm"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return len(rows)


@pytest.fixture
def cli_env(monkeypatch):
    from oirl.settings import get_settings

    monkeypatch.setenv("OIRL_EMBEDDER", "hashing-bow-64")  # fast, deterministic; MiniLM in the service tests
    monkeypatch.setenv("OIRL_GATE_MIN_QUERIES", "5")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_help_describes_each_command():
    for cmd, words in (("train", "--holdout-fraction"), ("evaluate", "--protocol"), ("select", "--candidates"),
                       ("tasks", "create")):
        result = invoke(cmd, "--help")
        assert result.exit_code == 0 and words in result.output


def test_cli_options_cover_the_library_parameters():
    """`oirl train`/`evaluate` take every field of the dataclasses the HTTP bodies are, so they cannot drift."""
    import dataclasses

    from typer.main import get_command

    cli = get_command(app)
    for name, cls in (("train", RetrainParams), ("evaluate", EvaluationParams)):
        options = {p.name for p in cli.commands[name].params}
        fields = {f.name for f in dataclasses.fields(cls)} - {"n_boot", "test_fraction"}
        assert fields <= options, f"{name} lacks {fields - options}"


def test_bad_input_fails_with_a_clear_message(cli_env):
    result = invoke("train", "--task", "nope")
    assert result.exit_code == 1 and "task 'nope' does not exist" in result.output
    invoke("tasks", "create", "t", "--prompt", APPLE)
    result = invoke("train", "--backend", "svm")
    assert result.exit_code == 2 and "--backend" in result.output
    result = invoke("train", "--holdout-fraction", "1.5")
    assert result.exit_code == 2 and "--holdout-fraction" in result.output
    result = invoke("train", "--gate-decisions", "newest")
    assert result.exit_code == 2 and "--gate-decisions" in result.output and "'fresh'" in result.output
    result = invoke("evaluate", "--protocol", "leaky")
    assert result.exit_code == 2 and "--protocol" in result.output
    result = invoke("tasks", "create", "Bad Name!")
    assert result.exit_code == 2 and "name" in result.output
    result = invoke("train", "--params", "[1]")
    assert result.exit_code == 2 and "JSON object" in result.output


def test_select_without_any_model_says_what_to_do(cli_env):
    invoke("tasks", "create", "t", "--prompt", APPLE)
    result = invoke("select", "How many apples?")
    assert result.exit_code == 2 and "oirl train --task t" in result.output


def test_production_shaped_logs_from_import_to_a_served_promoted_model(cli_env, tmp_path):
    path = tmp_path / "prod.csv"
    n_rows = production_csv(path)
    first = invoke("data", "import", str(path), "--task", "fruit")
    assert first.exit_code == 0 and f"{n_rows} new observations" in first.output, first.output
    again = invoke("data", "import", str(path), "--task", "fruit")
    assert "0 new observations" in again.output
    listed = invoke("tasks", "list")
    assert "fruit" in listed.output and f"{n_rows:>8,} observations" in listed.output and "2/2 prompts" in listed.output

    trained = invoke("train", "--task", "fruit", "--params", '{"n_rounds": 40, "min_data_in_leaf": 2}')
    assert trained.exit_code == 0, trained.output
    assert "registered v1 as challenger of task 'fruit'" in trained.output and "(DR)" in trained.output
    assert "default prompt: " in trained.output and "bootstrap resamples" in trained.output
    models = invoke("models", "list")
    assert "v1" in models.output and "fruit" in models.output and "[challenger]" in models.output
    first = invoke("models", "promote", "1")
    assert first.exit_code == 0 and "champion none -> v1" in first.output
    assert "v1 is already the champion; nothing changed" in invoke("models", "promote", "1").output

    out = invoke("select", "banana question 999 about bananas and number 999", "--json")
    assert out.exit_code == 0, out.output
    answer = json.loads(out.output)
    assert answer["task"] == "fruit" and answer["model_version"] == 1
    # Partial logs give no full-information validation: the policy keeps its default (τ = inf),
    # so any departure the model would make is flagged as a fallback.
    assert answer["fallback"] == (answer["ranking"][0]["prompt"] != answer["prompt"])
    assert (answer["fallback_reason"] is None) == (not answer["fallback"])

    second = invoke("train", "--params", '{"n_rounds": 40, "min_data_in_leaf": 2}')  # the only task: default
    assert "registered v2" in second.output and "vs champion v1" in second.output
    # v1 won with nothing to beat, and v2, the same model again, did not beat it significantly: both provisional
    assert "pass (provisional)" in invoke("models", "list").output
    promote = invoke("models", "promote", "2")
    assert promote.exit_code == 0 and "champion v1 -> v2" in promote.output, promote.output
    assert "champion v2 -> v1" in invoke("models", "rollback").output

    report = invoke("evaluate", "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png"),
                    "--params", '{"n_rounds": 40, "min_data_in_leaf": 2}')
    assert report.exit_code == 0, report.output
    assert "cannot be read off the logs" in report.output and "held-out log loss" in report.output
    assert "repeat ceiling:" in report.output
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["information"] == "partial"
    # logs with propensities: the policies side by side, on the same held-out decisions, each against BoTr
    assert "policies on the same held-out logged decisions" in report.output
    policies = saved["policies"]
    assert list(policies) == ["champion", "challenger", "botr", "uniform"]
    assert policies["botr"]["estimates"]["ips"]["ci95"] and "vs_botr" not in policies["botr"]
    vs = policies["uniform"]["vs_botr"]
    assert vs["estimator"] == "dr" and vs["ci95"][0] <= vs["difference"] <= vs["ci95"][1]
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")


def test_tasks_prompts_activate_and_deactivate(cli_env):
    assert invoke("tasks", "create", "t", "--llm", "m", "--prompt", APPLE, "--prompt", BANANA).exit_code == 0
    assert invoke("tasks", "create", "t").exit_code == 1  # exists
    shown = invoke("tasks", "show", "t")
    pid = int(shown.output.split("[")[1].split("]")[0])
    assert invoke("tasks", "deactivate", "t", str(pid)).exit_code == 0
    assert "inactive" in invoke("tasks", "show", "t").output
    assert invoke("tasks", "deactivate", "t", "999").exit_code == 2
    assert invoke("tasks", "add-prompt", "t", "A third prompt: ").exit_code == 0
    assert "already a prompt" in invoke("tasks", "add-prompt", "t", "A third prompt: ").output
    assert "1/3 prompts active" in invoke("tasks", "list").output or "2/3 prompts active" in invoke(
        "tasks", "list").output


def test_evaluate_full_information_logs_with_a_k_curve(cli_env, tmp_path):
    rng = np.random.default_rng(1)
    rows = [{"query": f"{kind} question {i} about {kind}s", "prompt": prompt,
             "correct": int(prompt.startswith(f"Use the {kind}") != (rng.random() < 0.1))}
            for i in range(120) for kind in (("apple", "banana")[i % 2],) for prompt in (APPLE, BANANA)]
    pd.DataFrame(rows).to_csv(tmp_path / "full.csv", index=False)
    invoke("data", "import", str(tmp_path / "full.csv"), "--task", "fruit")
    out = invoke("evaluate", "--params", '{"n_rounds": 40, "min_data_in_leaf": 2}', "--k-curve",
                 str(tmp_path / "k.png"))
    assert out.exit_code == 0, out.output
    assert "Prompt-OIRL (default: safe fallback)" in out.output and "K=2: Prompt-OIRL" in out.output
    assert (tmp_path / "k.png").read_bytes().startswith(b"\x89PNG")


def test_off_policy_evaluation_of_any_policy_on_partial_logs(cli_env, tmp_path):
    production_csv(tmp_path / "prod.csv", n=400)
    invoke("data", "import", str(tmp_path / "prod.csv"), "--task", "fruit")
    invoke("train", "--params", '{"n_rounds": 40, "min_data_in_leaf": 2}')
    assert invoke("models", "promote", "1").exit_code == 0
    reports = {}
    for policy in ("champion", "v1", "uniform", "botr", "prompt:1"):
        out = invoke("evaluate", "--policy", policy, "--json", str(tmp_path / f"{policy}.json"),
                     "--plot", str(tmp_path / "ope.png"))
        assert out.exit_code == 0, out.output
        assert "DR " in out.output and "95% CI" in out.output
        reports[policy] = json.loads((tmp_path / f"{policy}.json").read_text())
    for report in reports.values():
        assert report["n"] > 40 and set(report["estimates"]) == {"ips", "snips", "dm", "dr"}
        for e in report["estimates"].values():
            assert e["ci95"][0] <= e["value"] <= e["ci95"][1]
    # uniform logging: the uniform target's weights are all 1, so IPS is the observed mean
    assert reports["uniform"]["estimates"]["ips"]["value"] == pytest.approx(reports["uniform"]["logged_reward"])
    assert reports["uniform"]["ess"] == pytest.approx(reports["uniform"]["n"])
    assert reports["champion"]["estimates"] == reports["v1"]["estimates"]
    # each prompt is right on half the questions (90% of the time): every constant policy is near 0.5
    assert 0.3 < reports["prompt:1"]["estimates"]["dr"]["value"] < 0.7
    assert (tmp_path / "ope.png").read_bytes().startswith(b"\x89PNG")
    bad = invoke("evaluate", "--policy", "greedy-ish")
    assert bad.exit_code == 2 and "--policy" in bad.output
    missing = invoke("evaluate", "--policy", "v99")
    assert missing.exit_code == 1 and "99" in missing.output and "Traceback" not in missing.output, missing.output
