"""The JSON the console reads beyond the core API: live figures, recent evaluations, alias history,
and the console's own files."""

from __future__ import annotations

import time


def test_live_figures_follow_the_selections(client):
    first = client.get("/v1/live").json()
    assert first["judged"] == {"synth": []} and first["models"] == {"synth": 1}
    for i in range(3):
        assert client.post("/v1/select", json={"query": f"What is {i} + 7?"}).status_code == 200
    assert client.post("/v1/select", json={"query": "What is 0 + 7?"}).status_code == 200  # cached
    live = client.get("/v1/live?task=synth").json()
    assert live["selections"] == 4 and live["selections_per_second"] > 0
    assert live["cache_hit_rate"] == 0.25 and 0 <= live["fallback_share"] <= 1
    assert live["exploration_share"] == 0.0
    assert live["latency_ms"]["p50"] > 0 and live["latency_ms"]["p99"] >= live["latency_ms"]["p50"]
    assert "worker" in live["scope"]
    time.sleep(0.5)  # the decision log writes off the request path
    rates = client.get("/v1/live").json()["tasks"]["synth"]
    assert rates["decisions"] == 4 and rates["exploration_share"] == 0.0 and 0 <= rates["fallback_share"] <= 1
    again = client.get("/v1/live").json()  # the window is about a minute, not since the previous look
    assert again["selections"] == 4 and again["window_seconds"] >= live["window_seconds"]
    r = client.get("/v1/live?task=nope")
    assert r.status_code == 404 and "task 'nope' does not exist" in r.json()["detail"]


def test_judged_accuracy_comes_from_feedback_in_the_store(client, auth):
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    rows = [{"query": f"What is {i} + 1?", "prompt": "The answer is:", "correct": i % 4 != 0, "decision_id": f"d{i}",
             "logged_at": (now - timedelta(minutes=30 - i)).isoformat()} for i in range(12)]
    rows.append({"query": "What is 99 + 1?", "prompt": "The answer is:", "correct": False})  # not a decision
    assert client.post("/v1/logs", json={"task": "synth", "rows": rows}, headers=auth).json()["inserted"] == 13
    judged = client.get("/v1/live?task=synth").json()["judged"]["synth"]
    assert sum(p["n"] for p in judged) == 12
    assert sum(p["n"] * p["accuracy"] for p in judged) == 9  # 3 of the 12 were wrong
    assert [p["at"] for p in judged] == sorted(p["at"] for p in judged)
    r = client.get("/v1/live?task=nope")
    assert r.status_code == 404 and "task 'nope' does not exist" in r.json()["detail"]


def test_recent_evaluations_newest_first_with_their_tables(client, auth, wait_job):
    assert client.get("/v1/evaluations").json() == {"evaluations": []}
    ids = []
    for k in (1, 2):
        r = client.post("/v1/evaluations", json={"k": k, "n_boot": 200}, headers=auth)
        ids.append(r.json()["id"])
        assert wait_job(client, r.json()["status_url"], auth)["status"] == "succeeded"
    listed = client.get("/v1/evaluations?limit=5").json()["evaluations"]
    assert [e["id"] for e in listed] == ids[::-1]
    assert [e["report"]["k"] for e in listed] == [2, 1] and listed[0]["plot_url"].endswith("/plot.png")
    assert len(client.get("/v1/evaluations?limit=1").json()["evaluations"]) == 1
    assert client.get("/v1/evaluations?limit=0").status_code == 422


def test_alias_history_newest_first(client, auth, settings, model_dir):
    from oirl.registry import ModelRegistry
    from oirl.store.engine import make_engine, make_session_factory

    v2 = ModelRegistry(make_session_factory(make_engine(settings.resolved_database_url)),
                       settings.resolved_artefact_dir).register(model_dir).id
    assert client.post(f"/admin/models/{v2}/promote", json={"force": True, "reason": "why not"},
                       headers=auth).status_code == 200
    assert client.post("/admin/models/rollback", headers=auth).status_code == 200
    events = client.get("/v1/tasks/synth/history").json()["events"]
    assert [(e["version"], e["previous"]) for e in events] == [(1, v2), (v2, 1), (1, None)]
    assert events[1]["reason"] == "forced: why not" and events[0]["reason"].startswith("rollback")
    assert client.get("/v1/tasks/synth/history?alias=challenger").json()["events"] == []
    assert client.get("/v1/tasks/nope/history").status_code == 404
    assert client.get("/v1/tasks/synth/history?alias=other").status_code == 422


def test_console_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script type="module" src="/static/js/main.js">' in page.text
    for name in ("main.js", "api.js", "ui.js", "tasks.js", "models.js", "evaluations.js", "live.js", "try.js"):
        r = client.get(f"/static/js/{name}")
        assert r.status_code == 200 and "javascript" in r.headers["content-type"], name
    assert client.get("/static/console.css").status_code == 200
    assert client.get("/static/nope.js").status_code == 404


def test_live_keeps_this_workers_figures_when_the_store_is_down(client):
    from oirl.store.engine import make_engine, make_session_factory

    service = client.app.state.service
    assert client.post("/v1/select", json={"query": "What is 2 + 2?"}).status_code == 200
    # A store that refuses connections (nothing listens on port 1): a real OperationalError.
    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    service.factory, factory = make_session_factory(down), service.factory
    try:
        live = client.get("/v1/live").json()
    finally:
        service.factory = factory
        down.dispose()
    assert "not reachable" in live["store_error"] and live["tasks"] == {} and live["judged"] == {}
    assert live["selections"] == 1 and live["models"] == {"synth": 1}
