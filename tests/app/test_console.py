"""The web console in a real browser: Debian's chromium driven by Playwright, against a live uvicorn
on 127.0.0.1 with a real SQLite store and the tiny trained model.

Every page is opened and used as a person would: try a query (free text marked unseen), start an
evaluation and see its plots, promote and roll back with the admin token and see the refusal
without it, and read errors (503, 4xx, a proxy's HTML page) as messages. Screenshots of each page
go to ``screenshots/console/`` (not committed). Skipped when Playwright or chromium is missing,
except in CI (``CI`` set), where ``.ci/run`` installs both and a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from service_support import TINY, TOKEN, make_settings, seed_store

from app.main import create_app
from oirl.registry import ModelRegistry
from oirl.store.engine import make_engine, make_session_factory

CHROMIUM = os.environ.get("OIRL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[2] / "screenshots" / "console"


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if CHROMIUM is None or not Path(CHROMIUM).is_file():
        return f"no chromium at {CHROMIUM!r} (apt-get install chromium, or set OIRL_CHROMIUM to a Chromium binary)"
    return None


MISSING = _missing()
if MISSING and not os.environ.get("CI"):
    pytest.skip(MISSING, allow_module_level=True)  # before any fixture, so a skip costs nothing


@pytest.fixture(scope="module")
def browser():
    if MISSING:  # only under CI, where .ci/run installs both
        pytest.fail(f"{MISSING}; .ci/run installs it, so CI must have it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI and containers run as root, where chromium's sandbox refuses to start.
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(base: str, path: str, ok, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.get(base + path, headers={"Authorization": f"Bearer {TOKEN}"})
            if r.status_code == 200 and ok(r.json()):
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{path} never became ready")


@contextmanager
def live_service(settings, minilm, training_embedder):
    """uvicorn on a free port of 127.0.0.1 in a thread; yields the base URL once it listens."""
    app = create_app(settings, embedder=minilm, training_embedder=training_embedder)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(base, "/healthz", lambda b: True)
        yield base
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory, model_dir, minilm, training_embedder):
    """A live service: task `synth` with champion v1, a retrained challenger v2 (gate against v1) and
    v3, a version never judged against the champion (so the gate refuses it)."""
    home = tmp_path_factory.mktemp("console")
    url = f"sqlite:///{home / 'oirl.db'}"
    settings = make_settings(home, url)
    seed_store(url, settings.resolved_artefact_dir, model_dir)
    with live_service(settings, minilm, training_embedder) as base:
        _wait(base, "/readyz", lambda b: b["ready"])
        auth = {"Authorization": f"Bearer {TOKEN}"}
        job = httpx.post(f"{base}/admin/retrain", json={"params": TINY, "holdout_fraction": 0.25}, headers=auth).json()
        assert _wait(base, job["status_url"], lambda b: b["status"] in ("succeeded", "failed"))["status"] == "succeeded"
        engine = make_engine(url)
        ModelRegistry(make_session_factory(engine), settings.resolved_artefact_dir).register(model_dir)
        engine.dispose()
        yield base


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))  # an uncaught JS error fails the test
    pg.set_default_timeout(20_000)
    yield pg
    context.close()
    assert not errors, errors


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def set_token(page) -> None:
    page.fill("#token-input", TOKEN)
    page.click("#token-form button")
    page.wait_for_selector("#token-forget")


def test_tasks_page_shows_champion_challenger_gates_and_toggles_prompts(page, server):
    page.goto("/#/tasks")
    card = page.locator("section.card[data-task=synth]")
    aliases = card.locator("table.aliases")
    assert "v1" in aliases.locator("tr", has_text="champion").first.inner_text()
    challenger = aliases.locator("tr", has_text="challenger").inner_text()
    assert "v2" in challenger and "held-out queries" in challenger and "95% CI" in challenger
    assert "Exploration" in card.inner_text()
    rows = card.locator("table.prompts tbody tr")
    assert rows.count() == 2
    shot(page, "tasks")

    first = rows.first
    first.locator("button", has_text="deactivate").click()  # no token yet: refused, and said so
    assert "admin token" in card.locator(".status .error").inner_text()
    set_token(page)
    first.locator("button", has_text="deactivate").click()
    page.locator("section.card[data-task=synth] table.prompts tbody tr.inactive").wait_for()
    assert httpx.get(f"{server}/v1/tasks/synth").json()["prompts"][0]["active"] is False
    page.locator("section.card[data-task=synth] table.prompts tbody tr").first.locator(
        "button", has_text="activate").click()
    page.locator("section.card[data-task=synth] table.prompts tbody tr.inactive").wait_for(state="detached")
    assert all(p["active"] for p in httpx.get(f"{server}/v1/tasks/synth").json()["prompts"])

    page.fill("section.card[data-task=synth] input[aria-label='new prompt']", "Answer in one word: ")
    page.click("section.card[data-task=synth] form.add-prompt button")
    added = page.locator("section.card[data-task=synth] table.prompts tbody tr", has_text="Answer in one word")
    assert "active" in added.inner_text()
    added.locator("button", has_text="deactivate").click()  # registered, but not a default candidate
    page.locator("section.card[data-task=synth] table.prompts tbody tr.inactive").wait_for()
    prompts = httpx.get(f"{server}/v1/tasks/synth").json()["prompts"]
    assert [(p["text"], p["active"]) for p in prompts][-1] == ("Answer in one word: ", False)


def test_try_a_query_ranks_registered_and_unseen_prompts(page):
    page.goto("/#/try/synth")
    page.fill("#query", "Ali has 12 marbles, loses 3 of them and then buys 40 more. How many now?")
    page.click("#add-free")
    page.fill("#free input.free-text", "Solve it carefully and give only the number: ")
    page.click("#rank")
    rows = page.locator("#ranking tbody tr")
    rows.first.wait_for()
    assert rows.count() == 3
    assert page.locator("#ranking tr.chosen").count() == 1
    unseen = page.locator("#ranking tr", has=page.locator(".badge.unseen"))
    assert unseen.count() == 1 and "Solve it carefully" in unseen.inner_text()
    # Bars share one 0..1 scale: each bar's width is its P(correct) of the same track.
    widths = page.eval_on_selector_all("#ranking .pbar", "els => els.map(e => [e.querySelector('.fill')"
                                       ".getBoundingClientRect().width / e.getBoundingClientRect().width,"
                                       " parseFloat(e.innerText)])")
    assert all(abs(w - p) < 0.01 for w, p in widths), widths
    assert "model v1" in page.locator("#result .flags").inner_text()
    shot(page, "try")

    for box in page.locator("#registered input.cand").all():
        box.uncheck()
    page.locator("#free button", has_text="remove").click()
    page.click("#rank")
    assert "candidates is empty" in page.locator("#result .error").inner_text()  # the 422's detail, readable


def test_models_promote_and_roll_back_need_the_token(page, server):
    page.goto("/#/models")
    section = page.locator("section.card[data-task=synth]")
    v3 = section.locator("tr[data-version='3']")
    v3.locator("button.promote").click()
    assert "missing `Authorization: Bearer <token>` header" in section.locator(".status .error").inner_text()
    assert httpx.get(f"{server}/v1/models").json()["aliases"]["synth"]["champion"] == 1

    set_token(page)
    v3.locator("button.promote").click()  # the gate refuses a version never judged against v1
    assert "not judged against the current champion v1" in section.locator(".status .error").inner_text()
    v3.locator("input.force").check()
    v3.locator("input.reason").fill("browser test")
    v3.locator("button.promote").click()
    assert "v3 is now the champion of synth (was v1)" in section.locator(".status .ok").inner_text()
    assert httpx.get(f"{server}/v1/models").json()["aliases"]["synth"]["champion"] == 3
    history = section.locator("table.history tbody tr")
    assert "forced: browser test" in history.first.inner_text()
    assert section.locator("tr[data-version='3'] .badge", has_text="champion").count() == 1
    shot(page, "models")

    section.locator("button.rollback").click()
    assert "champion back to v1 (was v3)" in section.locator(".status .ok").inner_text()
    assert httpx.get(f"{server}/v1/models").json()["aliases"]["synth"]["champion"] == 1
    assert "rollback" in section.locator("table.history tbody tr").first.inner_text()


def test_evaluation_runs_and_shows_table_and_plots(page):
    page.goto("/#/evaluations/synth")
    page.locator("#eval-protocol").wait_for()
    options = page.locator("#eval-protocol option").all_inner_texts()  # from EvaluationParams' schema
    assert any(o.startswith("grouped") for o in options) and any(o.startswith("paper") for o in options)
    page.click("#eval-start")  # without the token: refused, readable
    assert "admin token" in page.locator("#eval-form .error").inner_text()
    set_token(page)
    for k in ("1", ""):  # two K values: the page draws accuracy against K from both
        page.fill("#eval-k", k)
        page.click("#eval-start")
        page.wait_for_function("k => { const t = document.querySelector('#eval-detail h2')?.innerText || '';"
                               " return t.includes('succeeded') && t.includes('K=1') === (k === '1'); }",
                               arg=k, timeout=120_000)
    detail = page.locator("#eval-detail")
    assert "succeeded" in detail.locator("h2").inner_text()
    assert "Prompt-OIRL" in detail.locator("table.methods").inner_text()
    img = detail.locator("img.plot")
    img.wait_for()
    page.wait_for_function("() => document.querySelector('#eval-detail img.plot').naturalWidth > 0")
    charts = detail.locator("svg.chart")
    assert charts.count() == 2  # method comparison with intervals, accuracy against K
    assert "Accuracy against K" in charts.nth(1).inner_html()
    assert page.locator("table.evaluations tbody tr").count() == 2
    assert "Repeat ceiling: no query was tried more than once" in detail.inner_text()  # every toy query is new
    shot(page, "evaluations")


def test_live_page_shows_serving_figures(page, server):
    for i in range(5):
        httpx.post(f"{server}/v1/select", json={"query": f"What is {i} + 40?"}).raise_for_status()
    page.goto("/#/live")
    tiles = page.locator("#live-tiles")
    tiles.locator(".tile").first.wait_for()
    text = tiles.inner_text()
    assert "selections / s" in text and "cache hit rate" in text and "latency p99" in text and "synth v1" in text
    assert " ms" in tiles.locator(".tile", has_text="latency p50").inner_text()
    assert "no feedback yet" in page.locator("main").inner_text()
    page.wait_for_selector("main svg.chart")  # the rate chart after the second reading
    shot(page, "live")


def test_errors_read_as_messages_never_a_stuck_spinner(page, server):
    # 409: a task without a champion yet.
    r = httpx.post(f"{server}/v1/tasks", json={"name": "fresh", "prompts": ["Answer: "]},
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 201, r.text
    page.goto("/#/try/fresh")
    page.click("#rank")
    error = page.locator("#result .error").inner_text()
    assert "Error 409" in error and "has no champion model yet" in error and "train one" in error

    # A proxy answering HTML instead of JSON (intercepted in the browser, as a gateway would).
    page.route("**/v1/tasks", lambda route: route.fulfill(status=502, content_type="text/html",
                                                          body="<html><body><h1>502 Bad Gateway</h1></body></html>"))
    page.goto("/#/tasks")
    error = page.locator("main .error").inner_text()
    assert "HTTP 502" in error and "Bad Gateway" in error
    assert page.locator("main .loading").count() == 0
    page.unroute("**/v1/tasks")
    page.locator("main .error button", has_text="try again").click()
    page.locator("section.card[data-task=synth]").wait_for()

    # A job that fails: its error, not an endless progress bar.
    set_token(page)
    page.goto("/#/evaluations/fresh")
    page.click("#eval-start")
    error = page.locator("#eval-detail .error")
    error.wait_for(timeout=60_000)
    assert "no observations in the store for task='fresh'" in error.inner_text()
    assert "failed" in page.locator("#eval-detail h2").inner_text()


def test_a_service_that_is_not_ready_says_why_on_every_page(browser, tmp_path, model_dir, minilm,
                                                            training_embedder):
    url = f"sqlite:///{tmp_path / 'oirl.db'}"
    settings = make_settings(tmp_path, url)
    seed_store(url, settings.resolved_artefact_dir, model_dir, promote=False)  # a model, no champion
    with live_service(settings, minilm, training_embedder) as base:
        context = browser.new_context(base_url=base)
        page = context.new_page()
        page.goto("/#/try/synth")
        banner = page.locator("#banner")
        banner.wait_for()
        assert "no champion model loaded for any task" in banner.inner_text()
        page.click("#rank")
        assert "Error 409" in page.locator("#result .error").inner_text()  # not ready, and no champion to serve
        page.goto("/#/tasks")  # the rest of the console still works
        assert "none" in page.locator("section.card[data-task=synth] table.aliases").inner_text()
        page.goto("/#/live")
        assert "none" in page.locator(".tile", has_text="models").inner_text()

        engine = make_engine(url)
        ModelRegistry(make_session_factory(engine), settings.resolved_artefact_dir).promote(1)
        engine.dispose()
        banner.wait_for(state="hidden", timeout=15_000)  # looked again, and it is ready now
        context.close()


def test_the_token_stays_in_session_storage_only(page, server):
    seen: list[str] = []
    page.on("request", lambda req: seen.append(req.url))
    page.goto("/#/tasks")
    set_token(page)
    page.goto("/#/models")
    page.locator("section.card[data-task=synth]").wait_for()
    assert page.evaluate("sessionStorage.getItem('oirl-admin-token')") == TOKEN
    assert page.evaluate("Object.values(localStorage).join()") == ""
    assert all(TOKEN not in u for u in seen) and TOKEN not in page.url
    assert TOKEN not in page.content()  # not written into the page (the input is emptied on save)
    for asset in ("/", "/static/js/main.js", "/static/js/api.js"):
        assert TOKEN not in httpx.get(server + asset).text


def test_decision_loop_exploration_feedback_and_off_policy_estimates(page, server):
    """Set a task's exploration in the page, serve decisions, judge them through POST /v1/feedback,
    then see the exploration share, the judged accuracy and an off-policy evaluation of the champion."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    page.goto("/#/tasks")
    set_token(page)
    card = page.locator("section.card[data-task=synth]")
    card.locator(".exploration summary").click()
    card.locator(".explore-form select[name=mode]").select_option("epsilon")
    card.locator(".explore-form input[name=epsilon]").fill("0.4")
    card.locator(".explore-form button").click()
    page.locator("section.card[data-task=synth] .explore-now", has_text="mode epsilon · ε = 0.4").wait_for()
    assert httpx.get(f"{server}/v1/tasks/synth").json()["exploration"]["mode"] == "epsilon"

    queries = [f"Mia has {a} marbles, loses 2 of them and then buys {a + 5} more. How many now?" if a % 2 else
               f"What is {a} + {a + 9}?" for a in range(3, 83)]
    answers = httpx.post(f"{server}/v1/select/batch", json={"task": "synth", "queries": queries},
                         timeout=60).json()["results"]
    assert any(a["explored"] for a in answers) and all(0 < a["propensity"] <= 1 for a in answers)
    # The toy LLM: word problems need steps, sums do not (as in the logs the model learnt from).
    items = [{"decision_id": a["decision_id"], "correct": ("step" in a["prompt"]["text"]) == ("marbles" in q)}
             for q, a in zip(queries, answers, strict=True)]
    assert httpx.post(f"{server}/v1/feedback/batch", json={"items": items}, headers=auth).json()["recorded"] == 80

    page.goto("/#/try/synth")
    page.click("#rank")
    flags = page.locator("#result .flags").inner_text()
    assert "propensity" in flags and "decision " in flags  # explored or greedy, with its probability and id

    page.goto("/#/live")
    tiles = page.locator("#live-tiles")
    tiles.locator(".tile").first.wait_for()
    assert tiles.locator(".tile", has_text="exploration share").locator(".tile-value").inner_text() != "0.0%"
    cells = page.locator("table.task-rates tr[data-task=synth] td").all_inner_texts()  # the store's, every worker's
    assert int(cells[3]) >= 81 and cells[5] != "0.0%", cells  # the batch's 80 decisions and the one above
    page.wait_for_selector("main svg.chart >> text=Judged accuracy")  # from the feedback, in the store
    assert "no feedback yet" not in page.locator("main").inner_text()
    shot(page, "live-judged")

    page.goto("/#/evaluations/synth")
    page.fill("#eval-policy", "champion")
    page.click("#eval-start")
    ope = page.locator("#eval-detail .ope")
    ope.wait_for(timeout=120_000)
    assert "policy “champion”" in ope.locator("h3").inner_text()
    assert {"IPS", "SNIPS"} <= set(ope.locator("tbody tr td:first-child").all_inner_texts())
    assert "logged (μ)" in ope.locator("svg.chart").inner_html()
    assert "DR " in page.locator("table.evaluations tbody tr").first.inner_text()
    shot(page, "evaluations-off-policy")

    page.goto("/#/tasks")  # back to greedy, through the page
    card.locator(".exploration summary").click()
    card.locator(".explore-form select[name=mode]").select_option("greedy")
    card.locator(".explore-form button").click()
    page.locator("section.card[data-task=synth] .explore-now", has_text="mode greedy").wait_for()
