"""Write and admin routes: bearer token compared in constant time; no token configured means 403."""

from __future__ import annotations

import pytest

WRITES = [
    ("post", "/v1/logs", {"rows": [{"query": "q", "prompt": "p", "correct": True}]}),
    ("post", "/v1/prompts", {"text": "New prompt: "}),
    ("post", "/v1/evaluations", {"dataset": "synth"}),
    ("post", "/admin/retrain", {}),
    ("get", "/admin/jobs/x", None),
    ("post", "/admin/models/1/promote", None),
    ("post", "/admin/models/rollback", None),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_missing_or_wrong_token_is_401(client, method, path, body):
    r = getattr(client, method)(path, **({"json": body} if body is not None else {}))
    assert r.status_code == 401 and "missing" in r.json()["detail"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = getattr(client, method)(path, headers={"Authorization": "Bearer nope"},
                                **({"json": body} if body is not None else {}))
    assert r.status_code == 401 and r.json()["detail"] == "invalid bearer token"


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_no_token_configured_means_closed(settings, minilm, training_embedder, method, path, body):
    from service_support import start_client

    with start_client(settings.model_copy(update={"admin_token": None}), minilm, training_embedder) as c:
        r = getattr(c, method)(path, headers={"Authorization": "Bearer anything"},
                               **({"json": body} if body is not None else {}))
        assert r.status_code == 403 and "OIRL_ADMIN_TOKEN" in r.json()["detail"]


def test_reads_need_no_token(client):
    for path in ("/v1/prompts", "/v1/models", "/healthz", "/metrics", "/"):
        assert client.get(path).status_code == 200, path
