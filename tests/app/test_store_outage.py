"""A store outage (PostgreSQL behind a TCP proxy that we cut for 10 s): selections keep being
answered from memory, write routes answer 503 (never 500), and every decision made meanwhile is stored
once the store is back."""

from __future__ import annotations

import socket
import socketserver
import threading
import time

import pytest
from service_support import start_client, wait_ready
from sqlalchemy import select
from sqlalchemy.engine import make_url

from oirl.store.engine import make_engine, make_session_factory
from oirl.store.models import Decision

pytestmark = pytest.mark.postgres


class TcpProxy:
    """127.0.0.1:<port> -> target; ``cut()`` drops every connection and refuses new ones until ``restore()``."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = None
        self.conns: list[socket.socket] = []
        self.server = None
        self.restore()

    def restore(self) -> None:
        proxy = self

        class Pump(socketserver.BaseRequestHandler):
            def handle(self):
                up = socket.create_connection(proxy.target)
                proxy.conns += [self.request, up]
                threading.Thread(target=_pipe, args=(up, self.request), daemon=True).start()
                _pipe(self.request, up)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port or 0), Pump)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def cut(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self.conns.clear()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass


def test_selections_survive_a_store_outage(pg_settings, minilm, training_embedder, auth):
    url = make_url(pg_settings.database_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = pg_settings.model_copy(update={"database_url": proxied})
    ids, statuses = [], []
    try:
        with start_client(settings, minilm, training_embedder) as c:
            wait_ready(c)
            ids.append(c.post("/v1/select", json={"query": "What is 2 + 2?"}).json()["decision_id"])
            proxy.cut()
            deadline = time.monotonic() + 10  # the outage of the issue; longer than the catalog's 5 s refresh
            n = 0
            while time.monotonic() < deadline:
                r = c.post("/v1/select", json={"query": f"What is {n} + {n + 1}?"})
                statuses.append(r.status_code)
                if r.status_code == 200:
                    ids.append(r.json()["decision_id"])
                n += 1
                time.sleep(0.1)
            down = c.post("/v1/feedback", json={"decision_id": ids[0], "correct": True}, headers=auth)
            assert down.status_code == 503 and "store" in down.json()["detail"], down.text
            assert c.get("/readyz").status_code == 503
            proxy.restore()
            log = c.app.state.service.decisions
            deadline = time.monotonic() + 30
            while log.queued and time.monotonic() < deadline:
                log.flush()
                time.sleep(0.2)
            assert log.queued == 0 and log.dropped == 0
            ok = c.post("/v1/feedback", json={"decision_id": ids[-1], "correct": True}, headers=auth)
            assert ok.status_code == 200, ok.text
    finally:
        proxy.cut()
    assert statuses and set(statuses) == {200}, statuses  # not one selection failed during the outage
    engine = make_engine(pg_settings.database_url)
    with make_session_factory(engine)() as s:
        stored = set(s.execute(select(Decision.id)).scalars())
    engine.dispose()
    assert set(ids) <= stored
