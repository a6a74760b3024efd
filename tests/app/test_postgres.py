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


def test_postgres_only_failures_of_issue_9_are_422s(pg_settings, minilm, training_embedder, auth):
    """NUL in stored text and NaN / Infinity / 1e999 in job params made PostgreSQL raise (500)."""
    import json

    def post(c, url, raw: bytes):
        return c.post(url, content=raw, headers={"Content-Type": "application/json", **auth})

    with start_client(pg_settings, minilm, training_embedder) as c:
        wait_ready(c)
        nul = json.dumps({"text": "Think \u0000 first: "}).encode()
        row = {"query": "q\u0000", "prompt": "p", "correct": 1}
        for url, raw in [("/v1/prompts", nul), ("/v1/tasks/synth/prompts", nul),
                         ("/v1/logs", json.dumps({"rows": [row]}).encode()),
                         ("/v1/tasks", json.dumps({"name": "t2", "description": "\u0000"}).encode()),
                         ("/admin/retrain", b'{"params": {"lambda": NaN}}'),
                         ("/admin/retrain", b'{"params": {"lambda": Infinity}}'),
                         ("/v1/evaluations", b'{"params": {"lambda": 1e999}}')]:
            r = post(c, url, raw)
            assert r.status_code == 422, (url, r.text)
        for url in ("/v1/tasks/a%00b", "/v1/models/2147483648", "/admin/jobs/%00"):
            assert c.get(url, headers=auth).status_code == 422, url
        # The store is intact and still answers.
        assert c.post("/v1/select", json={"query": "What is 2 + 3?"}).status_code == 200
        assert c.get("/v1/prompts").status_code == 200
