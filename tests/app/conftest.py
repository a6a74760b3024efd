"""Fixtures for the service tests: the real MiniLM embedder (loaded once), a tiny trained model,
and an app on a fresh SQLite store per test (PostgreSQL: a fresh database per test)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.main import create_app
from oirl.embed import CachedEmbedder, EmbeddingCache, make_embedder
from oirl.registry import ModelRegistry
from oirl.reward import fit_reward_model
from oirl.select import calibrate_policy
from oirl.settings import Settings
from oirl.store.engine import make_engine, make_session_factory, transaction
from oirl.store.logs import import_outcomes
from oirl.store.migrate import upgrade

TOKEN = "test-admin-token"
TINY = {"n_rounds": 30, "min_data_in_leaf": 3, "num_leaves": 4, "early_stopping_rounds": 5}
DIRECT, STEPWISE = "The answer is:", "Let's think step by step: "


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
            rows.append({"dataset": "synth", "external_key": str(i), "query": q, "prompt": prompt,
                         "correct": bool(correct), "llm": "toy-llm", "split": "train"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def minilm():
    emb = make_embedder("all-MiniLM-L6-v2", cache=False)
    emb.encode(["load the weights once per session"])
    return emb


@pytest.fixture(scope="session")
def training_embedder(minilm, tmp_path_factory):
    return CachedEmbedder(minilm, EmbeddingCache(tmp_path_factory.mktemp("embcache") / "e.sqlite3"))


@pytest.fixture(scope="session")
def model_dir(training_embedder, tmp_path_factory) -> Path:
    """One tiny trained model (with its calibrated policy), saved once per session."""
    logs = synthetic_logs()
    trained = fit_reward_model(logs, training_embedder, params=TINY)
    policy = calibrate_policy(trained)
    out = tmp_path_factory.mktemp("model") / "m"
    trained.model.save(out, extra={"policy": policy.to_dict()})
    return out


def seed_store(url: str, artefacts: Path, model_dir: Path, promote: bool = True) -> None:
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with transaction(factory) as s:
        import_outcomes(s, synthetic_logs(), source="test")
    registry = ModelRegistry(factory, artefacts)
    v = registry.register(model_dir, data_snapshot={"llm": "toy-llm"})
    if promote:
        registry.promote(v.id)
    engine.dispose()


def make_settings(home: Path, url: str, **over) -> Settings:
    base = dict(home=home, database_url=url, admin_token=TOKEN, champion_poll_seconds=0.2,
                job_heartbeat_seconds=0.2, job_stale_seconds=30)
    return Settings(**{**base, **over})


@pytest.fixture
def settings(tmp_path, model_dir) -> Settings:
    url = f"sqlite:///{tmp_path / 'oirl.db'}"
    s = make_settings(tmp_path, url)
    seed_store(url, s.resolved_artefact_dir, model_dir)
    return s


def start_client(settings: Settings, minilm, training_embedder) -> TestClient:
    app = create_app(settings, embedder=minilm, training_embedder=training_embedder)
    return TestClient(app, raise_server_exceptions=False)


def wait_ready(c: TestClient, timeout: float = 60.0) -> TestClient:
    """The champion is loaded on a startup thread after the embedder warms up; wait for it."""
    import time

    deadline = time.monotonic() + timeout
    while c.get("/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"service not ready: {c.get('/readyz').json()}")
        time.sleep(0.05)
    return c


@pytest.fixture
def client(settings, minilm, training_embedder):
    with start_client(settings, minilm, training_embedder) as c:
        yield wait_ready(c)


@pytest.fixture
def auth() -> dict:
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def pg_settings(tmp_path, model_dir):
    """A fresh PostgreSQL database per test; skipped without OIRL_TEST_DATABASE_URL."""
    base = os.environ.get("OIRL_TEST_DATABASE_URL")
    if not base:
        pytest.skip("OIRL_TEST_DATABASE_URL not set")
    name = f"oirl_app_{uuid.uuid4().hex[:10]}"
    server = make_url(base).set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    s = make_settings(tmp_path, url)
    seed_store(url, s.resolved_artefact_dir, model_dir)
    yield s
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    shutil.rmtree(tmp_path / "models", ignore_errors=True)


def _wait_job(client: TestClient, url: str, headers: dict, timeout: float = 120.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url, headers=headers).json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"job at {url} did not finish in {timeout}s: {body}")


@pytest.fixture
def wait_job():
    """wait_job(client, status_url, headers) -> the finished job's JSON."""
    return _wait_job
