"""A live uvicorn on 127.0.0.1: promote a new champion while requests flow; none may fail."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn

from app.main import create_app
from oirl.registry import ModelRegistry
from oirl.store.engine import make_engine, make_session_factory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hot_swap_under_load_without_a_failed_request(settings, minilm, training_embedder, model_dir):
    port = free_port()
    app = create_app(settings, embedder=minilm, training_embedder=training_embedder)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)

    # "Another worker" promotes: the registry is changed directly in the store, not through this
    # process, so the swap below can only come from the watcher's polling.
    registry = ModelRegistry(make_session_factory(make_engine(settings.resolved_database_url)),
                             settings.resolved_artefact_dir)
    v2 = registry.register(model_dir).id
    failures, seen, stop = [], [], threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(base_url=base, timeout=10) as c:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    r = c.post("/v1/select", json={"query": f"What is {worker} + {n}?"})  # novel: no cache
                    if r.status_code != 200:
                        failures.append((r.status_code, r.text))
                    else:
                        seen.append((time.monotonic(), int(r.headers["X-Model-Version"])))
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        promoted_at = time.monotonic()
        registry.promote(v2, force=True)
        time.sleep(3.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.should_exit = True
        thread.join(timeout=10)
    assert not failures, failures[:3]
    assert {v for _, v in seen} == {1, v2}
    swapped = min(t for t, v in seen if v == v2)
    assert swapped - promoted_at < 2.0  # poll interval 0.2 s + load
    assert all(v == v2 for t, v in seen if t > swapped + 0.5)  # never back to the old model
