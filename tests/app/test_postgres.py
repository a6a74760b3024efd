"""The same service on PostgreSQL: selection, ingest, a retrain job, promotion, jobs claimed once."""

from __future__ import annotations

import threading

import pytest
from service_support import TINY, start_client, wait_ready

from oirl.jobs import JobRunner
from oirl.store import jobs_repo
from oirl.store.engine import make_engine, make_session_factory, transaction

pytestmark = pytest.mark.postgres


def test_service_flow_on_postgres(pg_settings, minilm, training_embedder, auth, wait_job):
    with start_client(pg_settings, minilm, training_embedder) as c:
        wait_ready(c)
        r = c.post("/v1/select", json={"query": "What is 2 + 3?"})
        assert r.status_code == 200 and r.headers["X-Model-Version"] == "1"
        rows = [{"query": "What is 1 + 1?", "prompt": "Go: ", "correct": True}]
        assert c.post("/v1/logs", json={"rows": rows}, headers=auth).json()["inserted"] == 1
        assert c.post("/v1/logs", json={"rows": rows}, headers=auth).json()["inserted"] == 0
        job = wait_job(c, c.post("/admin/retrain", json={"params": TINY, "llm": "toy-llm"},
                                 headers=auth).json()["status_url"], auth)
        assert job["status"] == "succeeded", job["error"]
        v = job["result"]["version"]
        r = c.post(f"/admin/models/{v}/promote", json={"force": True}, headers=auth)
        assert r.status_code == 200
        assert c.post("/v1/select", json={"query": "What is 2 + 3?"}).headers["X-Model-Version"] == str(v)
        assert c.post("/admin/models/rollback", headers=auth).json()["version"] == 1
        assert 'oirl_jobs{kind="retrain",status="succeeded"} 1.0' in c.get("/metrics").text


def test_jobs_are_claimed_once_across_workers_on_postgres(pg_settings):
    engine = make_engine(pg_settings.resolved_database_url)
    factory = make_session_factory(engine)
    with transaction(factory) as s:
        ids = [jobs_repo.create_job(s, "noop").id for _ in range(20)]
    ran, lock = [], threading.Lock()

    def handler(ctx):
        with lock:
            ran.append(ctx.job_id)
        return {}

    def drain(i):
        r = JobRunner(factory, {"noop": handler}, worker_id=f"pg-w{i}")
        while r.run_once():
            pass

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert sorted(ran) == sorted(ids)
