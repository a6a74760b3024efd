"""Production-shaped logs built from the real SVAMP logs, across paths (CLI and HTTP) and stores.

Each sampled SVAMP training question is logged with ONE of the six training prompts, drawn
uniformly by a known logging policy (propensity 1/6); a fifth of them are tried twice. The
CLI imports, trains, registers and promotes; the service (same store, same artefacts) then
serves that model, retrains and evaluates over HTTP, and promotes the challenger.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from service_support import TOKEN, _wait_job, make_settings, start_client, wait_ready
from typer.testing import CliRunner

from oirl.cli import app as cli

pytestmark = pytest.mark.realdata
N_QUESTIONS = 1_200
PARAMS = '{"n_rounds": 60}'


def production_svamp(mirror_dir, n=N_QUESTIONS, seed=0) -> pd.DataFrame:
    from oirl.datasets.benchmark import LLM_NAME, load_benchmark

    logs = load_benchmark("svamp", mirror_dir)
    train = logs[(logs["split"] == "train") & (logs["prompt_index"] < 6)]
    rng = np.random.default_rng(seed)
    questions = rng.choice(train["query_index"].unique(), size=n, replace=False)
    chosen = pd.DataFrame({"query_index": questions, "prompt_index": rng.integers(0, 6, size=n)})
    picked = train.merge(chosen, on=["query_index", "prompt_index"])
    twice = picked.sample(frac=0.2, random_state=seed)
    out = pd.concat([picked, twice], ignore_index=True)
    return pd.DataFrame({"query": out["query"], "prompt": out["prompt"], "correct": out["correct"].astype(int),
                         "propensity": 1 / 6, "llm": LLM_NAME})


def test_svamp_production_logs_cli_then_http(database_url, mirror_dir, minilm, training_embedder, tmp_path,
                                             monkeypatch):
    from oirl.settings import get_settings

    for name, value in (("OIRL_HOME", str(tmp_path)), ("OIRL_DATABASE_URL", database_url),
                        ("OIRL_GATE_MIN_QUERIES", "50")):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    runner = CliRunner()

    def oirl(*args):
        result = runner.invoke(cli, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    path = tmp_path / "svamp_prod.csv"
    rows = production_svamp(mirror_dir)
    rows.to_csv(path, index=False)
    assert f"{len(rows):,} new observations" in oirl("data", "import", str(path), "--task", "svamp-prod")
    assert "0 new observations" in oirl("data", "import", str(path), "--task", "svamp-prod")
    trained = oirl("train", "--task", "svamp-prod", "--params", PARAMS)
    assert "registered v1" in trained and "(DR)" in trained
    oirl("models", "promote", "1")

    settings = make_settings(tmp_path, database_url, gate_min_queries=50)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with start_client(settings, minilm, training_embedder) as client:
        wait_ready(client)
        queries = rows["query"].drop_duplicates().head(40).tolist()
        answers = client.post("/v1/select/batch", json={"task": "svamp-prod", "queries": queries}).json()["results"]
        assert all(a["model_version"] == 1 for a in answers)
        # τ = inf on partial logs: the default is served, and every query where the model
        # ranked another prompt first says fallback: true.
        assert all(a["fallback"] == (a["ranking"][0]["prompt"]["text"] != a["prompt"]["text"]) for a in answers)
        assert len({a["prompt"]["text"] for a in answers}) == 1

        r = client.post("/admin/retrain", json={"task": "svamp-prod", "params": {"n_rounds": 60}}, headers=auth)
        job = _wait_job(client, r.json()["status_url"], auth, timeout=300)
        assert job["status"] == "succeeded", job["error"]
        gate = job["result"]["metrics"]["gate"]
        assert gate["method"] == "DR" and gate["champion_version"] == 1 and gate["n_queries"] >= 50
        assert gate["verdict"] in ("pass", "worse")
        promote = client.post(f"/admin/models/{job['result']['version']}/promote", json={"force": True},
                              headers=auth)
        assert promote.status_code == 200, promote.text

        r = client.post("/v1/evaluations", json={"task": "svamp-prod", "params": {"n_rounds": 60}, "n_boot": 200},
                        headers=auth)
        ev = _wait_job(client, r.json()["status_url"], {}, timeout=300)
        assert ev["status"] == "succeeded", ev["error"]
        assert ev["report"]["information"] == "partial" and ev["report"]["held_out_log_loss"]["n_observations"] > 0
    listed = oirl("models", "list", "--task", "svamp-prod")
    assert "v2" in listed and "champion]" in listed and "DR" in listed
    get_settings.cache_clear()
