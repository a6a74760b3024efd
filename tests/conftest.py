"""Shared fixtures: isolated settings, a fresh database per test (SQLite always, PostgreSQL when
OIRL_TEST_DATABASE_URL is set), and the real benchmark mirror when OIRL_TEST_MIRROR is set."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PG_ENV = "OIRL_TEST_DATABASE_URL"
MIRROR_ENV = "OIRL_TEST_MIRROR"


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory) -> Path:
    """Built ONNX / static encoders, shared by the whole session: each is exported once."""
    return tmp_path_factory.mktemp("encoders")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch, encoder_dir):
    """Every test gets its own data home, so nothing touches ~/.local/share/prompt-oirl."""
    from oirl.settings import get_settings

    home = tmp_path_factory.mktemp("oirl-home")
    monkeypatch.setenv("OIRL_HOME", str(home))
    monkeypatch.setenv("OIRL_ENCODER_DIR", str(encoder_dir))
    for var in ("OIRL_ENCODER", "OIRL_WORKERS",
                "OIRL_DATABASE_URL", "OIRL_MIRROR_DIR", "OIRL_BENCHMARK_DIR", "OIRL_ARTEFACT_DIR", "OIRL_ADMIN_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    value = os.environ.get(MIRROR_ENV)
    if not value:
        pytest.skip(f"{MIRROR_ENV} is not set (directory with the real benchmark files)")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"{MIRROR_ENV}={value} is not a directory")
    return path


def _postgres_schema_url(base: str):
    """Create a throwaway schema and return (url pinned to it via search_path, cleanup)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = make_url(base)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    pinned = url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)

    def cleanup() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    return pinned, cleanup


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """A fresh, empty database URL: a SQLite file, and a private PostgreSQL schema when configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    url, cleanup = _postgres_schema_url(base)
    try:
        yield url
    finally:
        cleanup()


@pytest.fixture
def store(database_url):
    """A migrated database and its session factory."""
    from oirl.store.engine import make_engine, make_session_factory
    from oirl.store.migrate import upgrade

    upgrade(database_url)
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible HTTP server on 127.0.0.1: moto's standalone server in its own process
    (an S3 emulator, not AWS; nothing in boto is patched). Skipped if moto is not installed."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto server did not start on {endpoint}")
            time.sleep(0.1)
    try:
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_root(s3_endpoint, monkeypatch) -> tuple[str, dict]:
    """(``s3://<fresh bucket>/models``, fsspec storage options pointing at the moto server)."""
    import boto3

    # Dummy credentials: moto accepts any, and botocore must not go looking for real ones.
    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"oirl-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/models", {"endpoint_url": s3_endpoint}
