"""Helpers shared by the service tests: plain functions and constants, imported by name.

They live outside conftest.py because several conftest modules share that name, so
`from conftest import ...` picks whichever pytest imported last."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from oirl.registry import ModelRegistry
from oirl.settings import Settings
from oirl.store.engine import make_engine, make_session_factory, transaction
from oirl.store.engine import scratch_database as engine_scratch_database
from oirl.store.logs import import_observations
from oirl.store.migrate import upgrade

TOKEN = "test-admin-token"


TINY = {"n_rounds": 30, "min_data_in_leaf": 3, "num_leaves": 4, "early_stopping_rounds": 5}


DIRECT, STEPWISE = "The answer is:", "Let's think step by step: "
TASK = "synth"


def synthetic_logs(n: int = 80, seed: int = 0) -> pd.DataFrame:
    """Bare sums are answered right with DIRECT, word problems with STEPWISE (90% of the time)."""
    rng = np.random.default_rng(seed)
    names = ["Tom", "Sara", "Ali", "Mia", "Ken"]
    rows = []
    for i in range(n):
        bare = i % 2 == 0
        a, b = int(rng.integers(2, 99)), int(rng.integers(2, 99))
        q = (f"What is {a} + {b}?" if bare else
             f"{names[i % 5]} has {a} marbles, loses {b % a + 1} of them and then buys {b} more. How many now?")
        for prompt, good in ((DIRECT, bare), (STEPWISE, not bare)):
            correct = good if rng.random() > 0.1 else not good
            rows.append({"task": TASK, "external_key": str(i), "query": q, "prompt": prompt,
                         "reward": float(correct), "correct": bool(correct), "llm": "toy-llm", "split": "train"})
    return pd.DataFrame(rows)


def seed_store(url: str, artefacts: Path, model_dir: Path, promote: bool = True) -> None:
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with transaction(factory) as s:
        import_observations(s, synthetic_logs(), source="test")
    registry = ModelRegistry(factory, artefacts)
    v = registry.register(model_dir)
    if promote:
        registry.promote(v.id)
    engine.dispose()


def save_model(logs: pd.DataFrame, embedder, out: Path, task: str = TASK, llm: str | None = "toy-llm") -> Path:
    """A trained model bundle for ``task`` (tiny LightGBM), the way `oirl train` writes one."""
    from oirl.registry import ModelBundle, save_bundle
    from oirl.reward import fit_reward_model
    from oirl.select import calibrate_policy

    trained = fit_reward_model(logs, embedder, params=TINY)
    policy = calibrate_policy(trained)
    scope = {"task": task, "llm": llm, "holdout": {"fraction": 0.2}}
    return save_bundle(ModelBundle(trained.model, policy, task, trained.table.prompts, scope), out)


def make_settings(home: Path, url: str, **over) -> Settings:
    base = dict(home=home, database_url=url, admin_token=TOKEN, champion_poll_seconds=0.2,
                job_heartbeat_seconds=0.2, job_stale_seconds=30, gate_min_queries=5)
    return Settings(**{**base, **over})


def start_client(settings: Settings, minilm, training_embedder) -> TestClient:
    app = create_app(settings, embedder=minilm, training_embedder=training_embedder)
    return TestClient(app, raise_server_exceptions=False)


def wait_ready(c: TestClient, timeout: float = 60.0) -> TestClient:
    """The champion is loaded on a startup thread after the embedder warms up; wait for it."""
    deadline = time.monotonic() + timeout
    while c.get("/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"service not ready: {c.get('/readyz').json()}")
        time.sleep(0.05)
    return c


def _wait_job(client: TestClient, url: str, headers: dict, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url, headers=headers).json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"job at {url} did not finish in {timeout}s: {body}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http_ready(base: str, timeout: float, alive=lambda: True) -> None:
    """Until GET /readyz answers 200; fail if the server died or the time is up."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not alive() or time.monotonic() > deadline:
            raise AssertionError(f"server at {base} not ready (alive: {alive()})")
        time.sleep(0.1)


@contextmanager
def live_server(settings: Settings, minilm, training_embedder, timeout: float = 60.0, prepare=None):
    """A real uvicorn on 127.0.0.1 (in this process, on a thread) serving the app; yields its base URL
    once /readyz answers 200. ``prepare(app)`` may add test routes first."""
    import threading

    import uvicorn

    port = free_port()
    app = create_app(settings, embedder=minilm, training_embedder=training_embedder)
    if prepare is not None:
        prepare(app)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ready(base, timeout, alive=thread.is_alive)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def server_process(settings: Settings, timeout: float = 120.0, **env: str):
    """``uvicorn app.main:create_app --factory`` in its own process, configured through ``OIRL_*``
    like a deployment (the real bundled MiniLM, no test embedder); yields (base URL, pid)."""
    port = free_port()
    config = {"OIRL_HOME": str(settings.home), "OIRL_DATABASE_URL": settings.resolved_database_url,
              "OIRL_ADMIN_TOKEN": TOKEN, "OIRL_RUN_JOBS": "false", "HF_HUB_OFFLINE": "1",
              "OMP_WAIT_POLICY": "PASSIVE", **env}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            env={**os.environ, **config}, cwd=Path(__file__).resolve().parents[2])
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ready(base, timeout, alive=lambda: proc.poll() is None)
        yield base, proc.pid
    finally:
        stop_process(proc)


def stop_process(proc) -> None:
    """SIGTERM (a graceful shutdown: queued decisions are written), SIGKILL after 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def scratch_database(prefix: str):
    """A PostgreSQL database of its own on the server at OIRL_TEST_DATABASE_URL, dropped afterwards (the test
    is skipped without that URL); yields its URL (``oirl.store.engine.scratch_database``)."""
    base = os.environ.get("OIRL_TEST_DATABASE_URL")
    if not base:
        pytest.skip("OIRL_TEST_DATABASE_URL not set")
    with engine_scratch_database(base, prefix) as url:
        yield url
