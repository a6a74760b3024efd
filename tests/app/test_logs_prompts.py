"""POST /v1/logs (idempotent, validated, repeated tries kept), the prompt registry and tasks."""

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
    prompts = {p["text"]: p for p in client.get("/v1/prompts").json()["prompts"]}
    assert prompts["Be brief: "]["tasks"] == {"synth": True}  # a logged prompt becomes a candidate of its task
    # A second try of the same query and prompt with another outcome is a new observation.
    retry = client.post("/v1/logs", json={"rows": [{**ROWS[0], "correct": False}]}, headers=auth)
    assert retry.json()["inserted"] == 1
    keyed = [{**ROWS[0], "observation_id": "evt-1"}, {**ROWS[0], "decision_id": "dec-1", "propensity": 0.5}]
    assert client.post("/v1/logs", json={"rows": keyed}, headers=auth).json()["inserted"] == 2
    assert client.post("/v1/logs", json={"rows": keyed}, headers=auth).json()["inserted"] == 0


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


def test_rows_for_another_llm_than_the_task_declares_are_refused(client, auth):
    assert client.post("/v1/tasks", json={"name": "support", "llm": "gpt-x"}, headers=auth).status_code == 201
    row = {"query": "Where is my parcel?", "prompt": "Be brief: ", "correct": True}
    r = client.post("/v1/logs", json={"task": "support", "rows": [row | {"llm": "gpt-4o-mini"}] * 2 + [row]},
                    headers=auth)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("2 row(s) of task 'support' name llm 'gpt-4o-mini', but the task serves "
                                         "'gpt-x'; nothing imported")
    named = client.post("/v1/logs", json={"task": "support", "rows": [row | {"llm": "gpt-x"}, row]}, headers=auth)
    assert named.status_code == 200 and named.json()["inserted"] == 2  # its own LLM, or none named


def test_log_limits_and_types(client, auth):
    r = client.post("/v1/logs", json={"rows": []}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"] == "rows is empty"
    r = client.post("/v1/logs", json={"rows": [{"query": "q", "prompt": "p"}]}, headers=auth)
    assert r.status_code == 422 and "rows.0: no outcome" in r.json()["detail"]
    r = client.post("/v1/logs", json={"task": "Not A Task!", "rows": ROWS}, headers=auth)
    assert r.status_code == 422 and "not a valid name" in r.json()["detail"]
    r = client.post("/v1/logs", json={"rows": [{**ROWS[0], "reward": 2}]}, headers=auth)
    assert r.status_code == 422 and "reward must be a number in [0, 1]" in r.json()["detail"]
    r = client.post("/v1/logs", json={"rows": [{**ROWS[0], "propensity": True}]}, headers=auth)
    assert r.status_code == 422 and "propensity" in r.text  # a boolean is not the probability 1.0
    r = client.post("/v1/logs", json={"rows": [{**ROWS[0], "logged_at": "NaT"}]}, headers=auth)
    assert r.status_code == 422 and "logged_at must be an ISO 8601 time, got 'NaT'" in r.json()["detail"]


def test_register_prompt_then_select_with_it(client, auth):
    r = client.post("/v1/prompts", json={"text": "Solve it carefully: ", "name": "careful"}, headers=auth)
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["name"] == "careful" and new["tasks"] == {}
    r = client.post("/v1/tasks/synth/prompts", json={"id": new["id"]}, headers=auth)
    assert r.status_code == 201 and r.json()["active"] is True
    again = client.post("/v1/prompts", json={"text": "Solve it carefully: "}, headers=auth)
    assert again.status_code == 200 and again.json()["id"] == new["id"]
    sel = client.post("/v1/select", json={"query": "What is 9 + 9?"}).json()
    assert new["id"] in [x["prompt"]["id"] for x in sel["ranking"]]  # default candidates include it
    r = client.post("/v1/prompts", json={"text": " "}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"] == "text is empty"


def test_tasks_create_list_and_prompt_activation(client, auth):
    r = client.post("/v1/tasks", json={"name": "support", "llm": "gpt-x", "prompts": ["Be kind: ", "Be terse: "]},
                    headers=auth)
    assert r.status_code == 201, r.text
    assert [p["active"] for p in r.json()["prompts"]] == [True, True] and r.json()["champion"] is None
    assert client.post("/v1/tasks", json={"name": "support"}, headers=auth).status_code == 409
    assert client.post("/v1/tasks", json={"name": "Bad Name"}, headers=auth).status_code == 422
    assert client.post("/v1/tasks", json={"name": "x"}).status_code in (401, 403)
    names = [t["name"] for t in client.get("/v1/tasks").json()["tasks"]]
    assert names == ["support", "synth"]
    pid = r.json()["prompts"][0]["id"]
    off = client.patch(f"/v1/tasks/support/prompts/{pid}", json={"active": False}, headers=auth)
    assert off.status_code == 200 and off.json()["active"] is False
    assert client.patch("/v1/tasks/support/prompts/99999", json={"active": False}, headers=auth).status_code == 404
    # no champion yet: a clear 409 (train one); another LLM than the task's: a clear 422
    r = client.post("/v1/select", json={"task": "support", "query": "Where is my parcel?"})
    assert r.status_code == 409 and "no champion" in r.json()["detail"] and "train one" in r.json()["detail"]
    r = client.post("/v1/select", json={"task": "synth", "query": "What is 1 + 1?", "llm": "other-llm"})
    assert r.status_code == 422 and "'toy-llm' only" in r.json()["detail"]
    r = client.post("/v1/select", json={"task": "nope", "query": "What is 1 + 1?"})
    assert r.status_code == 404 and "does not exist" in r.json()["detail"]
    r = client.post("/v1/select", json={"query": "What is 1 + 1?"})  # two tasks now, none named
    assert r.status_code == 422 and "name a task" in r.json()["detail"]
