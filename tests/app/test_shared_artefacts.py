"""Two service replicas (own data homes, so own artefact caches) on one database and one S3 store.

The store is moto's standalone S3 server on 127.0.0.1 (``s3_root`` in tests/conftest.py): real
HTTP, real s3fs and botocore, but an emulator, not AWS."""

from __future__ import annotations

from service_support import TOKEN, make_settings, start_client, synthetic_logs, wait_ready

from oirl.registry import ModelRegistry
from oirl.store.engine import make_engine, make_session_factory, transaction
from oirl.store.logs import import_observations
from oirl.store.migrate import upgrade


def test_replicas_serve_the_same_versions_from_s3(tmp_path, s3_root, model_dir, minilm, training_embedder,
                                                   monkeypatch):
    root, options = s3_root
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    # One replica is told the endpoint in its settings, the other finds it where boto does (the
    # environment): both ways are documented.
    first = make_settings(tmp_path / "r1", url, artefact_dir=root, artefact_storage_options=options)
    second = make_settings(tmp_path / "r2", url, artefact_dir=root)
    monkeypatch.setenv("AWS_ENDPOINT_URL", options["endpoint_url"])

    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with transaction(factory) as s:
        import_observations(s, synthetic_logs(), source="test")
    registry = ModelRegistry.from_settings(factory, first)
    v1 = registry.register(model_dir)
    assert v1.artefact_path == f"{root}/1"
    registry.promote(v1.id)

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with start_client(first, minilm, training_embedder) as a, start_client(second, minilm, training_embedder) as b:
        for c in (wait_ready(a), wait_ready(b)):
            r = c.post("/v1/select", json={"query": "What is 12 + 30?"})
            assert r.status_code == 200 and r.headers["X-Model-Version"] == "1", r.text
        v2 = registry.register(model_dir).id
        assert a.post(f"/admin/models/{v2}/promote", json={"force": True}, headers=auth).status_code == 200
        for c in (a, b):
            _wait_for_version(c, v2)
    assert (tmp_path / "r2" / "cache" / "artefacts" / f"{v2}-{v1.artefact_sha256[:16]}").is_dir()
    engine.dispose()


def _wait_for_version(c, version: int, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while True:
        r = c.post("/v1/select", json={"query": f"What is {version} + 1?"})
        if r.status_code == 200 and r.headers["X-Model-Version"] == str(version):
            return
        assert time.monotonic() < deadline, (r.status_code, r.text)
        time.sleep(0.1)
