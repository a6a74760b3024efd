"""Every bad request is a 4xx problem document whose detail names the problem; never a 500."""

from __future__ import annotations

import time

import pytest

PROBLEM = "application/problem+json"


def problem(r, status: int, *words: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["title"]
    for w in words:
        assert w in body["detail"], body["detail"]
    return body


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"query": ""}, ["query is empty"]),
        ({"query": "   "}, ["query is empty"]),
        ({"query": "x" * 8001}, ["8,001 characters", "limit of 8,000"]),
        ({"query": "q", "candidates": [{"id": 1}] * 65}, ["65 candidates", "limit of 64"]),
        ({"query": "q", "candidates": [{"id": 987}]}, ["unknown prompt id(s): 987"]),
        ({"query": "q", "candidates": []}, ["candidates is empty"]),
        ({"query": "q", "candidates": [{"id": 1, "text": "x"}]}, ["exactly one of `id`"]),
        ({"query": "q", "candidates": [{}]}, ["exactly one of `id`"]),
        ({"query": 42}, ["query", "string"]),
        ({"query": "q", "top_k": 0}, ["top_k"]),
        ({"query": "q", "top_k": "many"}, ["top_k"]),
        ({}, ["query: field required"]),
        ({"query": "q", "surprise": 1}, ["surprise: unknown field"]),
        ([1, 2], ["dictionary"]),
    ],
)
def test_bad_select_requests(client, payload, words):
    problem(client.post("/v1/select", json=payload), 422, *words)


def test_invalid_json_is_a_problem_not_a_500(client):
    r = client.post("/v1/select", content=b'{"query": ', headers={"Content-Type": "application/json"})
    problem(r, 422, "invalid JSON")


def test_batch_limits(client):
    problem(client.post("/v1/select/batch", json={"queries": []}), 422, "queries is empty")
    problem(client.post("/v1/select/batch", json={"queries": ["q"] * 257}), 422, "257 queries", "limit of 256")
    problem(client.post("/v1/select/batch", json={"queries": ["ok", ""]}), 422, "queries.1 is empty")
    problem(client.post("/v1/select/batch", json={"queries": "one"}), 422, "queries")


def test_limits_follow_settings(settings, minilm, training_embedder):
    from service_support import start_client, wait_ready

    small = settings.model_copy(update={"max_query_chars": 10, "max_candidates": 1, "max_batch": 2})
    with start_client(small, minilm, training_embedder) as c:
        wait_ready(c)
        problem(c.post("/v1/select", json={"query": "x" * 11}), 422, "limit of 10")
        problem(c.post("/v1/select", json={"query": "x", "candidates": [{"text": "a"}, {"text": "b"}]}), 422,
                "limit of 1")
        problem(c.post("/v1/select/batch", json={"queries": ["a", "b", "c"]}), 422, "limit of 2")


def test_unknown_route_and_method_and_missing_things(client, auth):
    problem(client.get("/v1/nothing"), 404, "no route GET /v1/nothing")
    problem(client.get("/v1/select"), 405)
    problem(client.get("/v1/models/99"), 404, "model version 99 does not exist")
    problem(client.get("/v1/models/abc"), 422, "version")
    problem(client.get("/admin/jobs/nope", headers=auth), 404, "no job nope")
    problem(client.get("/v1/evaluations/nope"), 404, "no evaluation nope")


def test_no_champion_is_409_and_not_ready(tmp_path, model_dir, minilm, training_embedder):
    from service_support import make_settings, seed_store, start_client

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    s = make_settings(tmp_path, url)
    seed_store(url, s.resolved_artefact_dir, model_dir, promote=False)
    with start_client(s, minilm, training_embedder) as c:
        time.sleep(1.0)  # let the startup thread look for a champion
        problem(c.post("/v1/select", json={"query": "q"}), 409, "no champion")
        problem(c.get("/readyz"), 503, "no champion")
