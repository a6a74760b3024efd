"""Background jobs persisted in the store, run by a worker thread inside each service process.

Life of a job: ``submit`` inserts it ``queued``; any worker's loop claims it with one
conditional UPDATE (only one claim can succeed, see ``store.jobs_repo``), runs the
handler for its kind, and records ``succeeded`` with a result or ``failed`` with the
error text. While a handler runs, a heartbeat thread touches the row every few seconds;
every loop (and every process start) fails jobs whose heartbeat went silent, so a crash
never leaves a job ``running`` forever. A handler that hangs while the heartbeat goes on is
failed after ``timeout_seconds``: it runs on its own thread, which is abandoned (a Python
thread cannot be killed) and learns at its next ``progress()`` that the job is no longer
its own, before it could publish anything. Handlers publish their output atomically at the
very end (a registry version, a report file), so a job that dies midway leaves nothing
half-written in use.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from oirl.redact import public_error
from oirl.store import jobs_repo as repo
from oirl.store.engine import transaction

log = logging.getLogger(__name__)


class JobError(RuntimeError):
    """An expected failure (bad parameters, no data): recorded as the job's error without a traceback."""


class JobLost(RuntimeError):
    """The job was taken away from this worker (reaped as stale); stop working on it."""


class JobContext:
    def __init__(self, runner: JobRunner, job_id: str, kind: str, params: dict[str, Any]):
        self.runner, self.job_id, self.kind, self.params = runner, job_id, kind, params
        self._progress: float | None = None

    def progress(self, fraction: float) -> None:
        """Record progress (0..1); raises ``JobLost`` if the job is no longer ours."""
        self._progress = fraction
        self.beat()

    def beat(self) -> None:
        with transaction(self.runner.factory) as s:
            if not repo.heartbeat(s, self.job_id, self.runner.worker_id, self._progress):
                raise JobLost(f"job {self.job_id} is no longer running on this worker")


def json_safe(value):
    """JSON columns cannot hold inf/NaN portably (PostgreSQL refuses them): make them null."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return value


Handler = Callable[[JobContext], dict[str, Any]]


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobRunner:
    def __init__(self, factory: sessionmaker[Session], handlers: dict[str, Handler], *,
                 worker_id: str | None = None, heartbeat_seconds: float = 5.0, stale_seconds: float = 60.0,
                 poll_seconds: float = 1.0, timeout_seconds: float | None = None,
                 on_finish: Callable[[str, str], None] | None = None):
        self.factory = factory
        self.handlers = handlers
        self.worker_id = worker_id or default_worker_id()
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_after = timedelta(seconds=stale_seconds)
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.on_finish = on_finish  # (kind, status): metrics hook
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.busy = False

    # -------------------------------------------------------------- API
    def submit(self, kind: str, params: dict[str, Any] | None = None) -> str:
        if kind not in self.handlers:
            raise ValueError(f"unknown job kind {kind!r}")
        with transaction(self.factory) as s:
            job_id = repo.create_job(s, kind, params).id
        self._wake.set()
        return job_id

    def reap(self) -> int:
        with transaction(self.factory) as s:
            n = repo.reap_stale(s, self.stale_after)
        if n:
            log.warning("failed %d stale job(s) whose worker stopped sending heartbeats", n)
        return n

    def run_once(self) -> str | None:
        """Claim one queued job and run it to the end in this thread; return its id (None: nothing queued)."""
        with transaction(self.factory) as s:
            job = repo.claim_next(s, self.worker_id, tuple(self.handlers))
            if job is None:
                return None
            job_id, kind, params = job.id, job.kind, dict(job.params or {})
        self._execute(job_id, kind, params)
        return job_id

    # --------------------------------------------------------- internals
    def _execute(self, job_id: str, kind: str, params: dict[str, Any]) -> None:
        ctx = JobContext(self, job_id, kind, params)
        stop_beating = threading.Event()

        def beat_loop() -> None:
            while not stop_beating.wait(self.heartbeat_seconds):
                try:
                    ctx.beat()
                except Exception:  # lost or store hiccup: the handler learns on its next progress()
                    return

        outcome: dict[str, Any] = {}

        def run_handler() -> None:
            try:
                outcome["result"] = json_safe(self.handlers[kind](ctx))
            except JobLost as exc:
                outcome["lost"] = exc
            except JobError as exc:
                outcome["error"] = str(exc)
            except Exception as exc:
                # The traceback goes to the service log; the job row (read by clients) gets the words only.
                log.exception("job %s (%s) failed", job_id, kind)
                outcome["error"] = public_error(exc)

        beater = threading.Thread(target=beat_loop, name=f"job-heartbeat-{job_id[:8]}", daemon=True)
        worker = threading.Thread(target=run_handler, name=f"job-{job_id[:8]}", daemon=True)
        beater.start()
        self.busy = True
        try:
            worker.start()
            worker.join(self.timeout_seconds)
            if worker.is_alive():
                outcome = {"error": f"timed out after {self.timeout_seconds:g} s (OIRL_JOB_TIMEOUT_SECONDS)"}
                log.error("job %s (%s) %s; abandoning its thread", job_id, kind, outcome["error"])
        finally:
            stop_beating.set()
            beater.join(timeout=self.heartbeat_seconds + 1)
            self.busy = False
        if "lost" in outcome:
            log.warning("%s", outcome["lost"])
            return
        result, error = outcome.get("result"), outcome.get("error")
        with transaction(self.factory) as s:
            recorded = repo.finish(s, job_id, self.worker_id, result=result, error=error)
        if recorded and self.on_finish:
            self.on_finish(kind, repo.FAILED if error is not None else repo.SUCCEEDED)

    def _loop(self) -> None:
        next_reap = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_reap:
                    self.reap()
                    next_reap = time.monotonic() + max(1.0, self.stale_after.total_seconds() / 2)
                if self.run_once() is not None:
                    continue  # there may be more queued work
            except Exception:  # store unreachable etc.: keep the loop alive
                log.exception("job loop error")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                # A job is still running and dies with the process: say so now rather than
                # leave it to the stale-job reaper a minute later.
                with transaction(self.factory) as s:
                    repo.reap_worker(s, self.worker_id)
            self._thread = None
