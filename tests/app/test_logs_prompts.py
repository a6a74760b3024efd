"""POST /v1/logs (idempotent, validated) and the prompt registry."""

from __future__ import annotations

ROWS = [
    {"query": "What is 3 + 4?", "prompt": "The answer is:", "correct": True, "llm": "toy-llm"},
    {"query": "What is 3 + 4?", "prompt": "Be brief: ", "correct": "0", "llm": "toy-llm", "split": "test"},
]


def test_ingest_is_idempotent(client, auth):
    first = client.post("/v1/logs", json={"rows": ROWS}, headers=auth)
    assert first.status_code == 200, first.text
    assert first.json() == {"rows": 2, "inserted": 2, "already_present": 0}
    again = client.post("/v1/logs", json={"rows": ROWS}, headers=auth)
    assert again.json() == {"rows": 2, "inserted": 0, "already_present": 2}
    texts = [p["text"] for p in client.get("/v1/prompts").json()["prompts"]]
    assert "Be brief: " in texts  # a logged prompt becomes a registered prompt


def test_bad_rows_reject_the_whole_request_and_say_why(client, auth):
    rows = [*ROWS, {"query": "", "prompt": "p", "correct": True}, {"query": "q", "prompt": "p", "correct": "yes"}]
    r = client.post("/v1/logs", json={"rows": rows}, headers=auth)
    assert r.status_code == 422
    body = r.json()
    assert "2 of 4 rows invalid, nothing imported" in body["detail"]
    assert "rows.2: query is empty" in body["detail"] and "true/false/1/0" in body["detail"]
    assert [e["loc"] for e in body["errors"]] == [["rows", "2"], ["rows", "3"]]
    ok = client.post("/v1/logs", json={"rows": ROWS}, headers=auth)
    assert ok.json()["inserted"] == 2  # nothing from the rejected request was stored


def test_log_limits_and_types(client, auth):
    r = client.post("/v1/logs", json={"rows": []}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"] == "rows is empty"
    r = client.post("/v1/logs", json={"rows": [{"query": "q", "prompt": "p"}]}, headers=auth)
    assert r.status_code == 422 and "rows.0.correct: field required" in r.json()["detail"]


def test_register_prompt_then_select_with_it(client, auth):
    r = client.post("/v1/prompts", json={"text": "Solve it carefully: ", "name": "careful"}, headers=auth)
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["name"] == "careful" and new["active"] is True
    again = client.post("/v1/prompts", json={"text": "Solve it carefully: "}, headers=auth)
    assert again.status_code == 200 and again.json()["id"] == new["id"]
    sel = client.post("/v1/select", json={"query": "What is 9 + 9?"}).json()
    assert new["id"] in [x["prompt"]["id"] for x in sel["ranking"]]  # default candidates include it
    r = client.post("/v1/prompts", json={"text": " "}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"] == "text is empty"
