"""Issue 9: no 5xx from any input, limits that cannot be bypassed, a rollback that cannot serve a
broken model, and an OpenAPI document that says what the service does."""

from __future__ import annotations

import json

import pytest
from service_support import TOKEN, start_client, wait_ready
from test_errors import PROBLEM, problem

from oirl.registry import ModelRegistry
from oirl.store.engine import make_engine, make_session_factory

LONE = "x \ud800"  # a lone UTF-16 surrogate: valid JSON ("\\ud800"), not encodable text
NUL = "a\x00b"


def send(client, method: str, url: str, payload, headers: dict | None = None):
    # json.dumps escapes the surrogate as \\ud800 (what an attacker sends); httpx's json= could not encode it.
    return client.request(method, url, content=json.dumps(payload).encode(),
                          headers={"Content-Type": "application/json", **(headers or {})})


def registry_of(settings) -> ModelRegistry:
    return ModelRegistry(make_session_factory(make_engine(settings.resolved_database_url)),
                         settings.resolved_artefact_dir)


TEXT_FIELDS = [
    ("POST", "/v1/select", lambda t: {"query": t}),
    ("POST", "/v1/select", lambda t: {"query": "q", "candidates": [{"text": t}]}),
    ("POST", "/v1/select", lambda t: {"query": "q", "llm": t}),
    ("POST", "/v1/select/batch", lambda t: {"queries": ["ok", t]}),
    ("POST", "/v1/logs", lambda t: {"rows": [{"query": t, "prompt": "p", "correct": True}]}),
    ("POST", "/v1/logs", lambda t: {"rows": [{"query": "q", "prompt": t, "correct": True}]}),
    ("POST", "/v1/logs", lambda t: {"rows": [{"query": "q", "prompt": "p", "correct": True, "llm": t}]}),
    ("POST", "/v1/prompts", lambda t: {"text": t}),
    ("POST", "/v1/prompts", lambda t: {"text": "fine", "name": t}),
    ("POST", "/v1/tasks", lambda t: {"name": "t2", "prompts": [t]}),
    ("POST", "/v1/tasks", lambda t: {"name": "t2", "description": t}),
    ("POST", "/v1/tasks/synth/prompts", lambda t: {"text": t}),
    ("POST", "/admin/retrain", lambda t: {"llm": t}),
    ("POST", "/admin/retrain", lambda t: {"params": {"objective": t}}),
    ("POST", "/v1/evaluations", lambda t: {"task": t}),
    ("POST", "/admin/models/1/promote", lambda t: {"reason": t}),
    ("POST", "/admin/models/rollback", lambda t: {"reason": t}),
    ("POST", "/v1/feedback", lambda t: {"decision_id": t, "correct": True}),
    ("POST", "/v1/feedback/batch", lambda t: {"items": [{"decision_id": t, "reward": 1.0}]}),
]


@pytest.mark.parametrize(("method", "url", "body"), TEXT_FIELDS)
@pytest.mark.parametrize(("bad", "words"), [(LONE, "surrogate"), (NUL, "NUL")])
def test_unencodable_text_is_a_422_on_every_text_field(client, auth, method, url, body, bad, words):
    problem(send(client, method, url, body(bad), auth), 422, words)


# Names the store holds in bounded columns (decisions.llm VARCHAR(128), tasks.name 64, observations.split 16):
# past the width they are a 422 at the edge. Before, a 200-character `llm` on /v1/select answered 200 and
# its decision then blocked PostgreSQL's decision log for everyone.
TOO_LONG = [
    ("POST", "/v1/select", {"query": "q", "llm": "x" * 129}, "128"),
    ("POST", "/v1/select", {"query": "q", "task": "t" * 65}, "64"),
    ("POST", "/v1/select/batch", {"queries": ["q"], "llm": "x" * 129}, "128"),
    ("POST", "/v1/logs", {"rows": [{"query": "q", "prompt": "p", "correct": True, "llm": "x" * 129}]}, "128"),
    ("POST", "/v1/logs", {"rows": [{"query": "q", "prompt": "p", "correct": True, "split": "s" * 17}]}, "16"),
    ("POST", "/v1/logs", {"task": "t" * 65, "rows": [{"query": "q", "prompt": "p", "correct": True}]}, "64"),
    ("POST", "/admin/retrain", {"llm": "x" * 129}, "128"),
    ("POST", "/v1/evaluations", {"task": "t" * 65}, "64"),
    ("POST", "/v1/evaluations", {"policy": "v2147483648"}, "no model version 2147483648"),  # was SQL in a job error
]


@pytest.mark.parametrize(("method", "url", "body", "limit"), TOO_LONG)
def test_names_longer_than_their_column_are_a_422(client, auth, method, url, body, limit):
    problem(send(client, method, url, body, auth), 422, limit)


@pytest.mark.parametrize("url", ["/v1/tasks/a%00b", "/v1/evaluations/%00", "/v1/models?task=a%00"])
def test_nul_in_path_or_query_parameters_is_a_422(client, url):
    problem(client.get(url), 422)


@pytest.mark.parametrize(("method", "url"), [
    ("GET", "/v1/models/9223372036854775808"), ("GET", "/v1/models/2147483648"), ("GET", "/v1/models/0"),
    ("POST", "/admin/models/99999999999999999999/promote"),
    ("PATCH", "/v1/tasks/synth/prompts/2147483648"),
])
def test_path_integers_outside_the_store_range_are_422(client, auth, method, url):
    body = {"active": True} if method == "PATCH" else None
    problem(client.request(method, url, json=body, headers=auth), 422, "less than or equal" if "0" != url[-1]
            else "greater than")


@pytest.mark.parametrize(("url", "payload", "field"), [
    ("/admin/retrain", {"seed": False}, "seed"),
    ("/admin/retrain", {"max_queries": 10.0}, "max_queries"),
    ("/v1/evaluations", {"seed": "3"}, "seed"),
    ("/v1/evaluations", {"params": {"lambda": float("nan")}}, "finite"),
    ("/admin/retrain", {"params": {"lambda": float("inf")}}, "finite"),
    ("/v1/select", {"query": "q", "top_k": True}, "top_k"),
    ("/v1/select", {"query": "q", "candidates": [{"id": False}]}, "candidates.0.id"),
    ("/v1/logs", {"rows": [{"query": "q", "prompt": "p", "reward": float("inf")}]}, "reward"),
])
def test_numbers_are_strict_and_finite(client, auth, url, payload, field):
    problem(send(client, "POST", url, payload, auth), 422, field)  # json.dumps writes NaN / Infinity


def test_overflowing_json_number_is_refused(client, auth):
    r = client.post("/admin/retrain", content=b'{"params": {"lambda": 1e999}}', headers={
        "Content-Type": "application/json", **auth})
    problem(r, 422, "finite")


def test_promote_and_rollback_refuse_unknown_fields(client, auth):
    problem(client.post("/admin/models/1/promote", json={"forse": True}, headers=auth), 422, "forse: unknown field")
    problem(client.post("/admin/models/rollback", json={"tsk": "synth"}, headers=auth), 422, "tsk: unknown field")


def test_a_promote_reason_starting_with_rollback_keeps_the_history(client, auth, settings, model_dir):
    v2 = registry_of(settings).register(model_dir).id
    r = client.post(f"/admin/models/{v2}/promote", json={"force": True, "reason": "rollback of the bad data"},
                    headers=auth)
    assert r.status_code == 200, r.text
    r = client.post("/admin/models/rollback", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"task": "synth", "alias": "champion", "version": 1, "previous": v2}


def test_rollback_onto_a_corrupted_version_is_refused(client, auth, settings, model_dir):
    v2 = registry_of(settings).register(model_dir).id
    assert client.post(f"/admin/models/{v2}/promote", json={"force": True}, headers=auth).status_code == 200
    (settings.resolved_artefact_dir / "1" / "metadata.json").write_text("{}")  # the previous champion rots
    body = problem(client.post("/admin/models/rollback", headers=auth), 409, "refusing to load")
    assert str(settings.home) not in body["detail"]  # no server paths in what a client reads
    assert client.get("/v1/models").json()["aliases"]["synth"]["champion"] == v2  # nothing moved
    assert client.post("/v1/select", json={"query": "What is 1 + 2?"}).headers["X-Model-Version"] == str(v2)


def test_readyz_reports_a_champion_that_does_not_load(settings, model_dir, minilm, training_embedder):
    registry = registry_of(settings)
    v2 = registry.register(model_dir).id
    with start_client(settings, minilm, training_embedder) as c:
        wait_ready(c)
        # Another worker (or the CLI) promotes v2, whose files are damaged afterwards on disk.
        (settings.resolved_artefact_dir / str(v2) / "metadata.json").write_text("{}")
        _move_champion(settings, v2)
        body = _wait_for(lambda: c.get("/readyz").json(), lambda b: b.get("degraded"))
        assert body["ready"] is True and body["models"] == {"synth": 1}
        assert "cannot load champion v2" in body["reasons"][0] and str(settings.home) not in body["reasons"][0]
    with start_client(settings, minilm, training_embedder) as c:  # a restart: nothing to serve for synth
        body = _wait_for(lambda: c.get("/readyz").json(), lambda b: "v2" in b.get("detail", ""))
        assert body["status"] == 503
    with start_client(settings, minilm, training_embedder) as c:
        r = c.post("/admin/models/rollback", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and r.json()["version"] == 1
        wait_ready(c)
        assert c.get("/readyz").json()["degraded"] is False


def _move_champion(settings, version: int) -> None:
    """Point the champion at ``version`` without verifying it (as a disk fault after promotion would)."""
    from oirl.store import registry_repo, tasks_repo
    from oirl.store.engine import transaction

    factory = make_session_factory(make_engine(settings.resolved_database_url))
    with transaction(factory) as s:
        task_id = tasks_repo.get_task(s, "synth").id
        registry_repo.move_alias(s, task_id, registry_repo.CHAMPION, version, reason="forced: test")


def _wait_for(get, ok, timeout: float = 30.0):
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if ok(value) or time.monotonic() > deadline:
            assert ok(value), value
            return value
        time.sleep(0.1)


def test_logs_obey_the_same_length_limits(client, auth):
    rows = [{"query": "q", "prompt": "p" * 8001, "correct": True}, {"query": "q" * 8001, "prompt": "p", "reward": 1}]
    body = problem(client.post("/v1/logs", json={"rows": rows}, headers=auth), 422, "rows.0.prompt is 8,001",
                   "OIRL_MAX_PROMPT_CHARS", "rows.1.query")
    assert [e["loc"] for e in body["errors"]] == [["rows", "0"], ["rows", "1"]]
    assert all(len(p["text"]) <= 8000 for p in client.get("/v1/prompts").json()["prompts"])


def test_default_candidates_over_the_cap_are_refused_not_cut(settings, minilm, training_embedder):
    small = settings.model_copy(update={"max_candidates": 1})  # the task has 2 active prompts
    with start_client(small, minilm, training_embedder) as c:
        wait_ready(c)
        problem(c.post("/v1/select", json={"query": "What is 1 + 1?"}), 409, "2 active prompts",
                "OIRL_MAX_CANDIDATES")
        assert c.post("/v1/select", json={"query": "What is 1 + 1?", "candidates": [{"id": 1}]}).status_code == 200


def test_datetimes_carry_a_utc_offset(client, auth):
    created = client.get("/v1/models").json()["versions"][0]["created_at"]
    assert created.endswith(("Z", "+00:00")), created
    assert client.get("/v1/tasks/synth").json()["created_at"].endswith(("Z", "+00:00"))
    job = client.post("/admin/retrain", json={"llm": "never-logged"}, headers=auth).json()
    assert client.get(job["status_url"], headers=auth).json()["created_at"].endswith(("Z", "+00:00"))


def test_openapi_documents_problem_documents_and_minimums(client):
    doc = client.get("/openapi.json").json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for code, response in op["responses"].items():
                if code[0] in "45":
                    assert list(response["content"]) == [PROBLEM], (method, path, code)
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["SelectRequest"]["properties"]["query"]["minLength"] == 1
    assert schemas["BatchSelectRequest"]["properties"]["queries"]["minItems"] == 1
    assert schemas["LogsIn"]["properties"]["rows"]["minItems"] == 1
    assert schemas["LogRowIn"]["properties"]["prompt"]["minLength"] == 1
    promote = doc["paths"]["/admin/models/{version}/promote"]["post"]["parameters"][0]["schema"]
    assert promote["maximum"] == 2**31 - 1


def test_options_and_wrong_methods_name_every_allowed_method(client):
    r = client.options("/v1/tasks")
    problem(r, 405)
    assert r.headers["allow"] == "GET, POST"  # two routes serve this path
    assert client.options("/v1/select").headers["allow"] == "POST"
    assert client.delete("/v1/tasks/synth/prompts/1").headers["allow"] == "PATCH"


def test_invalid_utf8_is_a_422_problem(client):
    r = client.post("/v1/select", content=b'{"query": "\xff\xfe"}', headers={"Content-Type": "application/json"})
    problem(r, 422, "invalid JSON", "not UTF-8")


def test_json_nested_past_the_parser_is_a_422_problem(client):
    deep = b'{"query": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    problem(client.post("/v1/select", content=deep, headers={"Content-Type": "application/json"}), 422,
            "nested deeper than the parser allows")


def test_an_unexpected_error_is_a_problem_that_closes_the_connection(settings, minilm, training_embedder):
    import httpx
    from service_support import live_server

    def boom():
        raise RuntimeError("/secret/path/in/a/bug")

    with live_server(settings, minilm, training_embedder, prepare=lambda app: app.add_api_route("/boom", boom)) as base:
        with httpx.Client(base_url=base) as c:  # one keep-alive client, as a browser or SDK would use
            r = c.get("/boom")
            body = problem(r, 500, "internal error")
            assert r.headers["connection"] == "close" and "secret" not in json.dumps(body)
            assert c.get("/healthz").status_code == 200  # the next request is not sent on a dead connection


def test_a_starting_service_sweeps_what_a_crash_left(settings, minilm, training_embedder):
    import os
    import tempfile
    import time
    from pathlib import Path

    old = time.time() - 7 * 3600  # older than the job timeout (6 h) and the staging age (1 h)
    staging = settings.resolved_artefact_dir / ".staging-crashed"
    training = Path(tempfile.gettempdir()) / "oirl-train-crashed-test"
    for d in (staging, training):
        d.mkdir(exist_ok=True)
        (d / "model.txt").write_text("half")
        os.utime(d, (old, old))
    with start_client(settings, minilm, training_embedder) as c:
        wait_ready(c)
    assert not staging.exists() and not training.exists()
    assert (settings.resolved_artefact_dir / "1").is_dir()  # a real version is never touched


def test_a_body_over_the_limit_is_refused_before_parsing_or_auth(settings, minilm, training_embedder):
    small = settings.model_copy(update={"max_body_bytes": 64 * 1024})
    with start_client(small, minilm, training_embedder) as c:
        wait_ready(c)
        big = json.dumps({"query": "x" * 100_000}).encode()
        r = c.post("/v1/select", content=big, headers={"Content-Type": "application/json"})
        problem(r, 413, "over the limit of 65,536 bytes (OIRL_MAX_BODY_BYTES)")
        # a write route says 413 before 401: the body is never parsed for a client without a token
        r = c.post("/v1/logs", content=big, headers={"Content-Type": "application/json"})
        problem(r, 413, "OIRL_MAX_BODY_BYTES")

        def chunks():  # no Content-Length: counted as it arrives
            for _ in range(100):
                yield b" " * 1024

        r = c.post("/v1/select", content=chunks(), headers={"Content-Type": "application/json"})
        problem(r, 413, "more bytes than that")
        ok = c.post("/v1/select", json={"query": "What is 2 + 2?"})  # and the service goes on
        assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(("url", "body"), [
    ("/v1/select", {"query": "q", "task": "t" * 1_000_000}),
    ("/v1/select", {"query": "q" * 1_000_000}),
    ("/v1/select", {"query": "q", "candidates": [{"text": "x" * 1_000_000}]}),
    ("/v1/select/batch", {"queries": ["q" * 1_000_000]}),
    ("/v1/logs", {"rows": [{"query": "q", "prompt": "p", "correct": True, "llm": "m" * 1_000_000}]}),
])
def test_a_refusal_never_echoes_unbounded_input(client, auth, url, body):
    r = send(client, "POST", url, body, auth)
    assert 400 <= r.status_code < 500 and len(r.content) < 4_000, (r.status_code, len(r.content))


def test_an_unknown_name_in_the_path_is_refused_without_echoing_it(client):
    r = client.get("/v1/tasks/" + "t" * 30_000)
    assert r.status_code == 422 and len(r.content) < 4_000
