"""Scale-out on a real Dask cluster: a ``distributed.LocalCluster`` of 2 worker processes, the hashing embedder."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest
from test_cli_model import invoke, production_csv
from toy_logs import FAST, fruit_logs

distributed = pytest.importorskip("distributed")

from oirl.distributed import ClusterEmbedder, ClusterError, EmbedderSpec, _load_embedder, connect  # noqa: E402
from oirl.embed import EmbeddingCache, make_embedder  # noqa: E402
from oirl.reward import fit_reward_model  # noqa: E402
from oirl.settings import Settings  # noqa: E402

EMBEDDER = "hashing-bow-64"


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as c:
        yield c


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c


def test_cluster_embeddings_equal_local_ones_and_the_cache_is_filled_in_bulk(client, tmp_path):
    texts = [f"question {i} about {('apples', 'pears', 'figs')[i % 3]} and {i % 11} boxes" for i in range(3000)]
    texts += texts[:500]  # duplicates are embedded once
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    embedder = ClusterEmbedder(client, EmbedderSpec(EMBEDDER, "onnx", 4, None), cache, partition_size=256)
    local = make_embedder(EMBEDDER, cache=False)

    assert embedder.identity == local.identity
    vectors = embedder.encode(texts)
    np.testing.assert_array_equal(vectors, local.encode(texts))
    assert embedder.n_embedded_ == 3000 and cache.count(local.identity.key) == 3000
    # both workers took part, and each built its embedder once for all its partitions
    loads = client.run(lambda: _load_embedder.cache_info())
    assert len(loads) == 2 and all(info.misses == 1 and info.hits >= 1 for info in loads.values()), loads

    again = embedder.encode(list(reversed(texts)))
    assert embedder.n_embedded_ == 3000  # a warm cache sends nothing to the cluster
    np.testing.assert_array_equal(again, vectors[::-1])


@pytest.mark.parametrize("backend", ["lightgbm", "xgboost"])
def test_a_model_trained_on_the_cluster_matches_the_local_one(client, backend):
    logs = fruit_logs(n_per_kind=150)
    embedder = make_embedder(EMBEDDER, cache=False)
    # no row sampling: a worker bags its own rows, so bags could never match the local ones
    params = {**FAST, "bagging_fraction": 1.0} if backend == "lightgbm" else {**FAST, "subsample": 1.0}
    local = fit_reward_model(logs, embedder, backend=backend, params=params)
    cluster = fit_reward_model(logs, ClusterEmbedder(client, EmbedderSpec(EMBEDDER, "onnx", 4, None), None),
                               backend=backend, params=params, client=client)
    # the same validation split, early-stopped on it, refit on everything
    assert cluster.model.validation_mask_.tolist() == local.model.validation_mask_.tolist()
    assert cluster.model.backend_.name == backend and 1 <= cluster.model.n_rounds_ <= FAST["n_rounds"]
    # Distributed trees bin features from per-worker samples, so scores differ a little, decisions rarely.
    ours, theirs = cluster.validation_scores, local.validation_scores
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.85  # measured 0.95-1.0 over runs
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).mean() >= 0.85  # measured 0.93-1.0
    # Unseen questions: the cluster's model learnt the query dependence. Judged over 40, not 2: a data-parallel
    # model is another draw of the procedure, and one borderline question flipped about one run in five.
    kinds = ["apple", "banana"] * 20
    q = embedder.encode([f"{k} question {1000 + i} about {k}s and number {1000 + i}" for i, k in enumerate(kinds)])
    p = embedder.encode(["Use the apple method: ", "Use the banana method: "])
    picks = cluster.model.score(q, p).argmax(axis=1)
    assert (picks == np.array([k == "banana" for k in kinds])).mean() >= 0.9, picks


def test_the_mlp_backend_is_refused_on_a_cluster(client):
    with pytest.raises(ClusterError, match="'mlp' backend has no Dask trainer"):
        fit_reward_model(fruit_logs(10), make_embedder(EMBEDDER, cache=False), backend="mlp", client=client)


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_fails_clearly():
    address = f"tcp://127.0.0.1:{_unused_port()}"
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler at .* within 1 s"):
        connect(address, timeout=1)


def test_oirl_train_dask_end_to_end(cluster, monkeypatch, tmp_path):
    from oirl.settings import get_settings

    monkeypatch.setenv("OIRL_EMBEDDER", EMBEDDER)
    monkeypatch.setenv("OIRL_GATE_MIN_QUERIES", "5")
    monkeypatch.setenv("OIRL_DASK_CONNECT_TIMEOUT", "1")
    get_settings.cache_clear()
    production_csv(tmp_path / "prod.csv")
    assert invoke("data", "import", str(tmp_path / "prod.csv"), "--task", "fruit").exit_code == 0

    fast = '{"n_rounds": 40, "min_data_in_leaf": 2}'
    trained = invoke("train", "--dask", cluster.scheduler_address, "--params", fast)
    assert trained.exit_code == 0, trained.output
    assert f"on the Dask cluster at {cluster.scheduler_address}" in trained.output
    assert "registered v1 as challenger of task 'fruit'" in trained.output
    # the cluster filled this process's embedding cache, which a local retrain then reads
    cache = EmbeddingCache(Settings().cache_dir / "embeddings.sqlite3")
    assert cache.count(make_embedder(EMBEDDER, cache=False).identity.key) > 100
    assert "registered v2" in invoke("train", "--params", fast).output

    monkeypatch.setenv("OIRL_DASK_SCHEDULER", f"tcp://127.0.0.1:{_unused_port()}")
    get_settings.cache_clear()
    down = invoke("train")
    assert down.exit_code == 1 and "cannot reach the Dask scheduler" in down.output, down.output
    mlp = invoke("train", "--dask", cluster.scheduler_address, "--backend", "mlp")
    assert mlp.exit_code == 1 and "no Dask trainer" in mlp.output
    get_settings.cache_clear()


def test_a_cli_trained_model_served_and_retrained_over_http_on_the_cluster(cluster, monkeypatch, tmp_path):
    """Across paths on production-shaped logs: `oirl train --dask` registers a model, the CLI promotes it, the
    service serves it, and POST /admin/retrain with OIRL_DASK_SCHEDULER trains the next one on the same cluster
    (the same `training_engine`), judged against the CLI's champion."""
    import time

    from fastapi.testclient import TestClient

    from app.main import create_app
    from oirl.settings import get_settings

    monkeypatch.setenv("OIRL_EMBEDDER", EMBEDDER)
    monkeypatch.setenv("OIRL_GATE_MIN_QUERIES", "5")
    get_settings.cache_clear()
    production_csv(tmp_path / "prod.csv")
    assert invoke("data", "import", str(tmp_path / "prod.csv"), "--task", "fruit").exit_code == 0
    fast = '{"n_rounds": 40, "min_data_in_leaf": 2}'
    assert "registered v1" in invoke("train", "--dask", cluster.scheduler_address, "--params", fast).output
    assert invoke("models", "promote", "1").exit_code == 0

    settings = Settings(admin_token="t", dask_scheduler=cluster.scheduler_address, champion_poll_seconds=0.2)
    auth = {"Authorization": "Bearer t"}
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        deadline = time.monotonic() + 60
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, c.get("/readyz").json()
            time.sleep(0.05)
        served = c.post("/v1/select", json={"task": "fruit", "query": "apple question 77 about apples"})
        assert served.status_code == 200 and served.json()["model_version"] == 1, served.text
        job = c.post("/admin/retrain", json={"task": "fruit", "params": {"n_rounds": 40, "min_data_in_leaf": 2}},
                     headers=auth).json()
        while (body := c.get(job["status_url"], headers=auth).json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline + 120, body
            time.sleep(0.1)
    assert body["status"] == "succeeded", body.get("error")
    assert body["result"]["version"] == 2 and body["result"]["metrics"]["gate"]["champion_version"] == 1
    get_settings.cache_clear()


def test_the_cli_never_imports_dask_unless_asked():
    code = ("import sys; from oirl.cli import app; "
            "print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
