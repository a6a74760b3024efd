"""Liveness, readiness, Prometheus metrics, the web page and the OpenAPI document."""

from __future__ import annotations

import time


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    deadline = time.monotonic() + 30
    while (r := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert r.status_code == 200, r.text
    assert r.json()["ready"] is True and r.json()["models"] == {"synth": 1}


def test_metrics_use_route_templates_and_never_query_text(client):
    client.post("/v1/select", json={"query": "What is 123456 + 1?"})
    client.get("/v1/models/424242")
    client.get("/no/such/path/999")
    text = client.get("/metrics").text
    assert 'route="/v1/select"' in text and 'route="/v1/models/{version}"' in text
    assert 'route="unmatched"' in text
    assert "123456" not in text and "424242" not in text and "/no/such/path" not in text
    assert 'oirl_model_info{embedder="all-MiniLM-L6-v2",task="synth",version="1"} 1.0' in text
    assert "oirl_selections_total{outcome=" in text
    assert "oirl_encoder_batch_size_bucket" in text


def test_web_page(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "/static/js/main.js" in r.text  # the console (tests/app/test_console*.py)


def test_openapi_lists_every_route_with_models(client):
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    for path in ("/v1/select", "/v1/select/batch", "/v1/evaluations", "/v1/evaluations/{eval_id}",
                 "/v1/evaluations/{eval_id}/plot.png", "/v1/logs", "/v1/prompts", "/v1/models",
                 "/admin/retrain", "/admin/jobs/{job_id}", "/admin/models/{version}/promote",
                 "/admin/models/rollback", "/healthz", "/readyz", "/metrics"):
        assert path in paths, path
    sel = paths["/v1/select"]["post"]
    assert sel["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("SelectResponse")
    assert "application/problem+json" in sel["responses"]["422"]["content"]
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    assert paths["/admin/retrain"]["post"]["security"] == [{"HTTPBearer": []}]
