"""Retraining as a job, gated promotion, rollback, and evaluations."""

from __future__ import annotations

import base64

from service_support import TINY


def test_retrain_job_makes_a_challenger_that_can_be_promoted_and_rolled_back(client, auth, wait_job):
    r = client.post("/admin/retrain", json={"params": TINY, "holdout_fraction": 0.25}, headers=auth)
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["status_url"], auth)
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"] == 1.0 and job["heartbeat_at"] is not None
    version = job["result"]["version"]
    assert version == 2
    models = client.get("/v1/models").json()
    assert models["aliases"] == {"synth": {"champion": 1, "challenger": 2}} and models["serving"] == {"synth": 1}
    gate = models["versions"][0]["metrics"]["gate"]
    assert gate["champion_version"] == 1 and gate["champion"] is not None and gate["verdict"] in ("pass", "worse")
    assert gate["method"] == "full information" and len(gate["ci95"]) == 2
    task = client.get("/v1/tasks/synth").json()
    assert task["challenger"]["version"] == 2 and task["challenger"]["gate"]["verdict"] == gate["verdict"]

    r = client.post(f"/admin/models/{version}/promote", json={"force": True, "reason": "test"}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"task": "synth", "alias": "champion", "version": 2, "previous": 1}
    sel = client.post("/v1/select", json={"query": "What is 4 + 4?"})
    assert sel.headers["X-Model-Version"] == "2" and sel.json()["model_version"] == 2

    r = client.post("/admin/models/rollback", headers=auth)
    assert r.status_code == 200 and r.json() == {"task": "synth", "alias": "champion", "version": 1, "previous": 2}
    assert client.post("/v1/select", json={"query": "What is 4 + 4?"}).headers["X-Model-Version"] == "1"
    r = client.post("/admin/models/rollback", headers=auth)
    assert r.status_code == 409 and "no previous champion" in r.json()["detail"]


def test_promotion_gate_refuses_an_unjudged_version(client, auth, settings, model_dir):
    from oirl.registry import ModelRegistry
    from oirl.store.engine import make_engine, make_session_factory

    registry = ModelRegistry(make_session_factory(make_engine(settings.resolved_database_url)),
                             settings.resolved_artefact_dir)
    v = registry.register(model_dir).id
    r = client.post(f"/admin/models/{v}/promote", headers=auth)
    assert r.status_code == 409 and "not judged against the current champion v1" in r.json()["detail"]
    assert client.post("/admin/models/77/promote", headers=auth).status_code == 404
    (settings.resolved_artefact_dir / str(v) / "metadata.json").write_text("{}")
    r = client.post(f"/admin/models/{v}/promote", json={"force": True}, headers=auth)
    assert r.status_code == 409 and "refusing to load" in r.json()["detail"]  # tampered: never promoted


def test_failed_retrain_reports_why(client, auth, wait_job):
    r = client.post("/admin/retrain", json={"task": "nope"}, headers=auth)
    assert r.status_code == 404 and "task 'nope' does not exist" in r.json()["detail"]
    r = client.post("/admin/retrain", json={"llm": "never-logged"}, headers=auth)
    job = wait_job(client, r.json()["status_url"], auth)
    assert job["status"] == "failed" and "no training observations" in job["error"]
    r = client.post("/admin/retrain", json={"backend": "catboost"}, headers=auth)
    assert r.status_code == 422 and "backend" in r.json()["detail"]
    r = client.post("/admin/retrain", json={"features": "concat+knn", "bogus": 1}, headers=auth)
    assert r.status_code == 422 and "bogus" in r.json()["detail"]


def test_retrain_with_an_unreachable_dask_scheduler_fails_the_job_not_the_service(client, auth, wait_job, settings):
    settings.dask_scheduler, settings.dask_connect_timeout = "tcp://127.0.0.1:9", 1.0  # nothing listens there
    r = client.post("/admin/retrain", json={"params": TINY}, headers=auth)
    job = wait_job(client, r.json()["status_url"], auth)
    assert job["status"] == "failed" and "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in job["error"]
    assert client.post("/v1/select", json={"query": "What is 4 + 4?"}).status_code == 200


def test_evaluation_job_reports_metrics_and_plot(client, auth, wait_job):
    r = client.post("/v1/evaluations", json={"task": "synth", "params": TINY,
                                             "protocol": "grouped", "n_boot": 200, "test_fraction": 0.3}, headers=auth)
    assert r.status_code == 202, r.text
    url = r.json()["status_url"]
    pending = client.get(f"{url}/plot.png")
    assert pending.status_code in (200, 409)
    body = wait_job(client, url, {})
    assert body["status"] == "succeeded", body["error"]
    methods = body["report"]["methods"]
    assert {"random", "botr_train", "prompt_oirl", "oracle"} <= set(methods)
    png = client.get(body["plot_url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    assert "plot_png_base64" not in str(body)
    assert base64  # the plot travels through the store base64-encoded; the API serves raw PNG
    metrics = client.get("/metrics").text
    assert 'oirl_jobs{kind="evaluation",status="succeeded"} 1.0' in metrics


def test_a_model_of_another_encoder_is_refused_at_load_and_at_promote(settings, auth, training_embedder):
    """The champion v1 was trained on MiniLM vectors; a service whose encoder gives other vectors
    (as onnx-int8 or static would) says so in /readyz and refuses to promote it, even forced."""
    import time

    from service_support import start_client

    from oirl.embed import HashingBagOfWordsEmbedder

    with start_client(settings, HashingBagOfWordsEmbedder(64), training_embedder) as c:
        deadline = time.monotonic() + 30
        while "trained on embedder" not in c.get("/readyz").text and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "this service runs hashing-bow-64" in ready.text
        r = c.post("/admin/models/1/promote", json={"force": True}, headers=auth)
        assert r.status_code == 409
        assert "trained on embedder all-MiniLM-L6-v2" in r.json()["detail"] and "retrain" in r.json()["detail"]
