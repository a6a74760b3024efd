"""Fixtures for the service tests: the real MiniLM embedder (loaded once), a tiny trained model,
and an app on a fresh SQLite store per test (PostgreSQL: a fresh database per test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from service_support import (
    TOKEN,
    _wait_job,
    make_settings,
    save_model,
    scratch_database,
    seed_store,
    start_client,
    synthetic_logs,
    wait_ready,
)

from oirl.embed import CachedEmbedder, EmbeddingCache, make_embedder
from oirl.settings import Settings


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
    return save_model(synthetic_logs(), training_embedder, tmp_path_factory.mktemp("model") / "m")


@pytest.fixture
def settings(tmp_path, model_dir) -> Settings:
    url = f"sqlite:///{tmp_path / 'oirl.db'}"
    s = make_settings(tmp_path, url)
    seed_store(url, s.resolved_artefact_dir, model_dir)
    return s


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
    with scratch_database("oirl_app") as url:
        s = make_settings(tmp_path, url)
        seed_store(url, s.resolved_artefact_dir, model_dir)
        yield s
    shutil.rmtree(tmp_path / "models", ignore_errors=True)


@pytest.fixture
def wait_job():
    """wait_job(client, status_url, headers) -> the finished job's JSON."""
    return _wait_job
