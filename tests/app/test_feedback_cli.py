"""One path: decisions served over HTTP are judged from a file with `oirl data feedback`, and a task's
exploration set with `oirl tasks explore` is what the service serves."""

from __future__ import annotations

import pandas as pd
from service_support import TASK, start_client, wait_ready
from typer.testing import CliRunner

from oirl.cli import app as cli
from oirl.settings import get_settings
from oirl.store.engine import make_engine, make_session_factory
from oirl.store.logs import observations_frame


def test_cli_feedback_and_exploration_reach_the_service(settings, minilm, training_embedder, monkeypatch, tmp_path):
    monkeypatch.setenv("OIRL_HOME", str(settings.home))
    monkeypatch.setenv("OIRL_DATABASE_URL", settings.resolved_database_url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        with start_client(settings, minilm, training_embedder) as c:
            wait_ready(c)
            out = runner.invoke(cli, ["tasks", "explore", TASK, "--mode", "softmax", "--temperature", "0.5"])
            assert out.exit_code == 0, out.output
            assert c.get(f"/v1/tasks/{TASK}").json()["exploration"]["mode"] == "softmax"
            bad = runner.invoke(cli, ["tasks", "explore", TASK, "--mode", "softmax", "--temperature", "0"])
            assert bad.exit_code == 2 and "temperature" in bad.output
            c.app.state.service.catalog.refresh(force=True)
            answers = [c.post("/v1/select", json={"query": f"What is {n} + 7?"}).json() for n in range(12)]
            assert all(0 < a["propensity"] < 1 for a in answers)  # softmax over two active prompts
            c.app.state.service.decisions.flush()

        judgements = tmp_path / "judged.csv"
        pd.DataFrame({"decision_id": [a["decision_id"] for a in answers] + ["never-issued"],
                      "correct": ["true", "false"] * 6 + ["true"]}).to_csv(judgements, index=False)
        first = runner.invoke(cli, ["data", "feedback", str(judgements)])
        assert first.exit_code == 1 and "12 recorded, 0 already recorded, 1 refused" in first.output
        assert "never-issued: unknown" in first.output
        again = runner.invoke(cli, ["data", "feedback", str(judgements)])
        assert "0 recorded, 12 already recorded, 1 refused" in again.output

        engine = make_engine(settings.resolved_database_url)
        with make_session_factory(engine)() as s:
            logs = observations_frame(s, task=TASK)
        engine.dispose()
        judged = logs.set_index("decision_id").loc[[a["decision_id"] for a in answers]]
        assert judged["propensity"].tolist() == [a["propensity"] for a in answers]
        assert judged["reward"].tolist() == [1.0, 0.0] * 6

        broken = tmp_path / "broken.csv"
        pd.DataFrame({"decision_id": ["x"], "correct": ["yes"]}).to_csv(broken, index=False)
        out = runner.invoke(cli, ["data", "feedback", str(broken)])
        assert out.exit_code == 1 and "row 1: correct must be true/false/1/0" in out.output
    finally:
        get_settings.cache_clear()
