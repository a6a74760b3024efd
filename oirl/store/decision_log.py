"""The decision log: every selection is recorded off the request's critical path.

``record`` only puts the decision on a bounded queue (never blocks, never raises); one thread
writes what has queued in batched transactions. When the store is slow or down, the queue
absorbs it up to ``max_queue`` decisions; beyond that new decisions are dropped and counted
(``dropped``), so selection keeps working and the loss is visible in ``/readyz`` and the
metrics. A batch the store could not take because it was unreachable is retried (with back-off)
before anything newer is written; a batch it refused for its content (a value the columns cannot
hold) is written row by row, and the rows it still refuses are set aside: counted (``rejected``),
logged, never retried, so one bad record cannot hold up every decision after it.
``stop`` flushes what is queued (graceful shutdown). Retention: decisions older than
``retention_days`` are deleted once an hour.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from oirl.store.engine import transaction
from oirl.store.logs import insert_ignoring_duplicates
from oirl.store.models import Decision, Task

log = logging.getLogger(__name__)


class DecisionLog:
    def __init__(self, factory, max_queue: int = 50_000, batch_size: int = 500, flush_seconds: float = 0.2,
                 retention_days: float = 90.0, prune_seconds: float = 3600.0):
        self.factory = factory
        self.batch_size, self.flush_seconds = batch_size, flush_seconds
        self.retention = timedelta(days=retention_days)
        self.prune_seconds = prune_seconds
        self._queue: queue.Queue[dict] = queue.Queue(maxsize=max_queue)
        self._pending: list[dict] = []  # a batch that failed to write, retried first
        self._task_ids: dict[str, int] = {}
        self._write_lock = threading.Lock()  # the thread and an explicit flush() never write at once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self.written = 0
        self.dropped = 0
        self.rejected = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ producer side
    def record(self, decision: dict) -> bool:
        """Queue one decision (see ``app.selection``); False if the queue was full and it was dropped."""
        decision.setdefault("created_at", datetime.now(UTC))
        try:
            self._queue.put_nowait(decision)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    @property
    def queued(self) -> int:
        return self._queue.qsize() + len(self._pending)

    def status(self) -> dict:
        return {"queued": self.queued, "written": self.written, "dropped": self.dropped,
                "rejected": self.rejected, "last_error": self.last_error}

    # ------------------------------------------------------------------ writer side
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread, then write whatever is still queued (best effort within ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        deadline = time.monotonic() + timeout
        while self.queued and time.monotonic() < deadline:
            if not self.flush():
                time.sleep(0.2)

    def flush(self) -> bool:
        """Write everything queued now, in batches; False if the store refused (it stays queued)."""
        with self._write_lock:
            while True:
                if not self._pending:
                    self._pending = self._take(self.batch_size)
                if not self._pending:
                    return True
                try:
                    self._write(self._pending)
                except Exception as exc:
                    if _unreachable(exc):  # store down or slow: keep the batch, try again later
                        self._note_unwritten(exc)
                        return False
                    if not self._write_row_by_row():
                        return False
                    continue
                self.written += len(self._pending)
                self._pending = []
                self.last_error = None

    def _note_unwritten(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        log.warning("decision log: %d decisions not written yet: %s", len(self._pending), self.last_error)

    def _write_row_by_row(self) -> bool:
        """The store refused the batch for its content: write each row alone and set aside those it
        still refuses. False (the unwritten rest kept) if the store became unreachable meanwhile."""
        while self._pending:
            row = self._pending[0]
            try:
                self._write([row])
            except Exception as exc:
                if _unreachable(exc):
                    self._note_unwritten(exc)
                    return False
                self.rejected += 1
                log.error("decision log: decision %s set aside, the store refused it: %s: %s",
                          row.get("id"), type(exc).__name__, str(exc).splitlines()[0][:200])
            else:
                self.written += 1
            self._pending.pop(0)
        return True

    def _take(self, n: int) -> list[dict]:
        out = []
        while len(out) < n:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return out

    def _run(self) -> None:
        backoff = self.flush_seconds
        while not self._stop.is_set():
            self._stop.wait(backoff)
            ok = self.flush()
            backoff = self.flush_seconds if ok else min(backoff * 2, 5.0)
            if ok and time.monotonic() - self._last_prune > self.prune_seconds:
                self._last_prune = time.monotonic()
                try:
                    self.prune()
                except Exception as exc:
                    log.warning("decision log: pruning failed: %s", exc)

    def _write(self, decisions: list[dict]) -> None:
        with transaction(self.factory) as s:
            names = {d["task"] for d in decisions} - self._task_ids.keys()
            if names:
                self._task_ids.update(s.execute(select(Task.name, Task.id).where(Task.name.in_(names))).all())
            rows = [{k: v for k, v in d.items() if k != "task"} | {"task_id": self._task_ids[d["task"]]}
                    for d in decisions if d["task"] in self._task_ids]  # a task deleted meanwhile: nothing to log
            insert_ignoring_duplicates(s, Decision.__table__, rows, ["id"])

    def prune(self, now: datetime | None = None) -> int:
        """Delete decisions older than the retention; returns how many."""
        cutoff = (now or datetime.now(UTC)) - self.retention
        with transaction(self.factory) as s:
            return s.execute(delete(Decision).where(Decision.created_at < cutoff)).rowcount or 0


def _unreachable(exc: Exception) -> bool:
    """Whether a write failed because the store could not be reached (worth retrying the same rows),
    as opposed to refusing these rows (a value too long, a constraint): retrying those never ends."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | ConnectionError | TimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated
