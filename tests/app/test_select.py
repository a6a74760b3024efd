"""POST /v1/select and /v1/select/batch."""

from __future__ import annotations

from service_support import DIRECT, STEPWISE


def test_select_default_candidates_answers_the_full_shape(client):
    r = client.post("/v1/select", json={"query": "What is 12 + 30?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["X-Model-Version"] == "1" and body["model_version"] == 1
    assert set(body) == {"task", "prompt", "p_correct", "ranking", "model_version", "fallback", "fallback_reason",
                         "explored", "propensity", "decision_id"}
    assert body["explored"] is False and body["propensity"] == 1.0 and len(body["decision_id"]) == 32
    assert body["prompt"]["text"] in (DIRECT, STEPWISE) and isinstance(body["prompt"]["id"], int)
    assert [x["p_correct"] for x in body["ranking"]] == sorted((x["p_correct"] for x in body["ranking"]), reverse=True)
    assert 0.0 <= body["p_correct"] <= 1.0 and isinstance(body["fallback"], bool)


def test_selection_is_query_dependent(client):
    bare = client.post("/v1/select", json={"query": "What is 41 + 17?"}).json()
    story = client.post("/v1/select", json={
        "query": "Mia has 40 marbles, loses 3 of them and then buys 12 more. How many now?"}).json()
    assert bare["ranking"][0]["prompt"]["text"] == DIRECT
    assert story["ranking"][0]["prompt"]["text"] == STEPWISE


def test_candidates_by_id_and_raw_text_and_top_k(client):
    prompts = {p["text"]: p["id"] for p in client.get("/v1/prompts").json()["prompts"]}
    r = client.post("/v1/select", json={
        "query": "What is 5 + 6?", "top_k": 2,
        "candidates": [{"id": prompts[DIRECT]}, {"text": "Answer in one word: "}, {"text": STEPWISE}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["ranking"]) == 2
    by_text = {x["prompt"]["text"]: x["prompt"]["id"] for x in body["ranking"]}
    if "Answer in one word: " in by_text:
        assert by_text["Answer in one word: "] is None  # an unregistered text has no id
    if STEPWISE in by_text:
        assert by_text[STEPWISE] == prompts[STEPWISE]  # a registered text is recognised


UNSEEN = ["Reply only with the word banana: ", "Ignore the question: ", "Answer in one word: "]


def test_a_prompt_no_observation_supports_is_ranked_and_marked_but_not_served(client):
    cands = [{"text": t} for t in [DIRECT, STEPWISE, *UNSEEN]]
    for q in ["What is 41 + 17?", "Mia has 40 marbles, loses 3 of them and then buys 12 more. How many now?"]:
        body = client.post("/v1/select", json={"query": q, "candidates": cands}).json()
        seen = {x["prompt"]["text"]: x["seen"] for x in body["ranking"]}
        assert seen == {DIRECT: True, STEPWISE: True} | dict.fromkeys(UNSEEN, False)
        assert body["prompt"]["text"] in (DIRECT, STEPWISE)
        opted = client.post("/v1/select", json={"query": q, "candidates": cands, "allow_unseen": True}).json()
        if not opted["fallback"]:
            assert opted["prompt"]["text"] == opted["ranking"][0]["prompt"]["text"]
    only_unseen = client.post("/v1/select", json={"query": "What is 2 + 2?", "candidates": cands[2:]}).json()
    assert only_unseen["prompt"]["text"] in UNSEEN  # nothing with evidence to prefer: the best is served


def test_repeated_query_is_served_from_cache(client):
    q = {"query": "What is 77 + 1?"}
    first, second = client.post("/v1/select", json=q).json(), client.post("/v1/select", json=q).json()
    assert first.pop("decision_id") != second.pop("decision_id")  # each request is its own decision
    assert first == second
    metrics = client.get("/metrics").text
    assert 'oirl_selection_cache_total{result="hit"} 1.0' in metrics


def test_batch_answers_each_query_in_order(client):
    qs = ["What is 1 + 2?", "Ken has 5 marbles, loses 2 of them and then buys 9 more. How many now?", "What is 8 + 8?"]
    r = client.post("/v1/select/batch", json={"queries": qs, "top_k": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["X-Model-Version"] == "1" and body["model_version"] == 1
    assert len(body["results"]) == 3 and all(len(x["ranking"]) == 1 for x in body["results"])
    single = client.post("/v1/select", json={"query": qs[1], "top_k": 1}).json()
    assert single["prompt"] == body["results"][1]["prompt"]
    assert abs(single["p_correct"] - body["results"][1]["p_correct"]) < 1e-6


def test_llm_the_model_was_not_trained_on_is_refused(client):
    ok = client.post("/v1/select", json={"query": "What is 2 + 2?", "llm": "toy-llm"})
    assert ok.status_code == 200
    r = client.post("/v1/select", json={"query": "What is 2 + 2?", "llm": "gpt-9"})
    assert r.status_code == 422 and "toy-llm" in r.json()["detail"]


def test_two_tasks_side_by_side_and_order_free_choices(client, auth, settings, training_embedder, tmp_path):
    """A second task with its own champion; promoting it leaves the first untouched; permuting the
    candidates never changes the choice."""
    import time

    from service_support import save_model, synthetic_logs

    from oirl.registry import ModelRegistry
    from oirl.store.engine import make_engine, make_session_factory, transaction
    from oirl.store.logs import import_observations

    factory = make_session_factory(make_engine(settings.resolved_database_url))
    other = synthetic_logs(seed=3).assign(task="other")
    with transaction(factory) as s:
        import_observations(s, other, source="test")
    registry = ModelRegistry(factory, settings.resolved_artefact_dir)
    v = registry.register(save_model(other, training_embedder, tmp_path / "o", task="other")).id
    registry.promote(v)
    deadline = time.monotonic() + 10
    while client.get("/v1/models").json()["serving"].get("other") != v and time.monotonic() < deadline:
        time.sleep(0.1)
    models = client.get("/v1/models").json()
    assert models["serving"] == {"synth": 1, "other": v} and models["aliases"]["synth"] == {"champion": 1}
    a = client.post("/v1/select", json={"task": "synth", "query": "What is 5 + 5?"}).json()
    b = client.post("/v1/select", json={"task": "other", "query": "What is 5 + 5?"}).json()
    assert (a["task"], a["model_version"], b["task"], b["model_version"]) == ("synth", 1, "other", v)
    cands = [{"text": t} for t in ("The answer is:", "Let's think step by step: ", "Answer: ", "Think: ")]
    for q in ("What is 12 + 30?", "Sara has 4 marbles, loses 2 and buys 9 more. How many now?"):
        picks = {client.post("/v1/select", json={"task": "synth", "query": q, "candidates": order}).json()["prompt"][
            "text"] for order in (cands, cands[::-1], cands[1:] + cands[:1])}
        assert len(picks) == 1, picks
