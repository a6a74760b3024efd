"""Everything one service process holds: store, registry + live champion, embedder, selector, jobs.

Built once per app in the lifespan. Routes reach it through ``deps.ServiceDep``.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

from sqlalchemy import select, text

from app.metrics import Metrics
from app.selection import Candidate, Selector
from oirl.jobs import (
    EVALUATION,
    RETRAIN,
    EvaluationParams,
    JobContext,
    JobError,
    JobRunner,
    RetrainParams,
    run_evaluation,
)
from oirl.jobs import retrain as run_retrain
from oirl.jobs.retrain import TRAIN_TMP_PREFIX
from oirl.registry import ChampionWatcher, LoadedModel, ModelRegistry, load_version
from oirl.registry.artefacts import sweep_staging
from oirl.select.explore import GREEDY, Exploration
from oirl.settings import Settings
from oirl.store import jobs_repo, tasks_repo
from oirl.store.decision_log import DecisionLog
from oirl.store.engine import make_engine, make_session_factory
from oirl.store.models import Prompt
from oirl.tasks import choose_task, exploration_of, resolve_task
from oirl.threads import configure_threads

log = logging.getLogger(__name__)


class EmbedderMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class TaskView:
    """What serving needs of a task: its LLM and its active candidate prompts."""

    name: str
    llm: str | None
    active: tuple[Candidate, ...]
    exploration: Exploration = GREEDY

    @cached_property
    def active_ids(self) -> frozenset[int]:  # once per catalog refresh, not per request
        return frozenset(c.id for c in self.active)

    def explorable(self, candidates: tuple[Candidate, ...]) -> tuple[bool, ...]:
        """Per candidate: may exploration send traffic to it (an active prompt of this task)?"""
        return tuple(c.id is not None and c.id in self.active_ids for c in candidates)


class TaskCatalog:
    """Tasks and their active prompts, and every prompt by id, re-read from the store at most
    every ``ttl`` seconds (every worker sees a change within that)."""

    def __init__(self, factory, ttl: float = 5.0):
        self.factory, self.ttl = factory, ttl
        self._loaded_at = -1e9
        self._tasks: dict[str, TaskView] = {}
        self._by_id: dict[int, Candidate] = {}
        self._id_by_text: dict[str, int] = {}
        self._lock = threading.Lock()

    def refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < self.ttl:
            return
        try:
            self._load()
        except Exception as exc:
            if self._loaded_at < 0:  # nothing to serve from yet: the caller's request fails (503)
                raise
            # The store is down or slow: keep serving the catalog we have, try again after the TTL.
            log.warning("task catalog not refreshed (serving the last one): %s", exc)
            self._loaded_at = time.monotonic()

    def _load(self) -> None:
        with self.factory() as s:
            prompts = {p.id: Candidate(p.id, p.text) for p in s.execute(select(Prompt).order_by(Prompt.id)).scalars()}
            tasks = {}
            for t in tasks_repo.list_tasks(s):
                active = tuple(prompts[p.id] for p, _ in tasks_repo.task_prompts(s, t.id, active_only=True))
                tasks[t.name] = TaskView(t.name, t.llm, active, exploration_of(t))
        with self._lock:
            self._tasks, self._by_id = tasks, prompts
            self._id_by_text = {c.text: i for i, c in prompts.items()}
            self._loaded_at = time.monotonic()

    def task(self, name: str) -> TaskView | None:
        self.refresh()
        found = self._tasks.get(name)
        if found is None:  # maybe created by another worker a moment ago
            self.refresh(force=True)
            found = self._tasks.get(name)
        return found

    def names(self) -> list[str]:
        self.refresh()
        return sorted(self._tasks)

    def by_id(self, prompt_id: int) -> Candidate | None:
        self.refresh()
        found = self._by_id.get(prompt_id)
        if found is None:
            self.refresh(force=True)
            found = self._by_id.get(prompt_id)
        return found

    def id_of(self, text_: str) -> int | None:
        return self._id_by_text.get(text_)


class Service:
    def __init__(self, settings: Settings, metrics: Metrics | None = None, embedder=None, training_embedder=None):
        from oirl.embed import make_embedder

        self.settings = settings
        configure_threads(settings.workers)
        self.engine = make_engine(settings.resolved_database_url)
        self.factory = make_session_factory(self.engine)
        self.metrics = metrics or Metrics()
        self.metrics.add_job_counts(self._job_counts)
        self.registry = ModelRegistry.from_settings(self.factory, settings)
        # Serving embeds unseen user queries: keep them in memory (LRU), not in the on-disk cache.
        self.embedder = embedder or make_embedder(settings, cache=False)
        # Jobs embed the logs again and again: the persistent content-hash cache pays off there.
        self.training_embedder = training_embedder or make_embedder(settings)
        self.catalog = TaskCatalog(self.factory)
        self.decisions = DecisionLog(self.factory, max_queue=settings.decision_queue_max,
                                     flush_seconds=settings.decision_flush_seconds,
                                     retention_days=settings.decision_retention_days)
        self.metrics.add_decision_log(self.decisions)
        self.selector = Selector(self.embedder, self.metrics, max_batch=settings.microbatch_max,
                                 max_wait_ms=settings.microbatch_wait_ms,
                                 answer_cache_bytes=settings.answer_cache_bytes,
                                 embedding_cache_bytes=settings.embedding_cache_bytes,
                                 on_decision=self.decisions.record if settings.decision_log else None)
        self.watcher = ChampionWatcher(self.registry, settings.champion_poll_seconds, loader=self._load,
                                       on_swap=lambda m: self.metrics.set_model(m.task, m.version, m.info.embedder))
        self.runner = JobRunner(self.factory, {RETRAIN: self._retrain_job, EVALUATION: self._evaluation_job},
                                heartbeat_seconds=settings.job_heartbeat_seconds,
                                stale_seconds=settings.job_stale_seconds,
                                timeout_seconds=settings.job_timeout_seconds,
                                on_finish=lambda kind, status: self.metrics.jobs_finished.labels(kind, status).inc())
        self.embedder_warm = False
        self.embedder_error: str | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        # One thread, in order: warming the embedder imports torch, and so does loading a model;
        # two threads importing torch at once can see it half-initialised.
        threading.Thread(target=self._warm_then_watch, name="startup", daemon=True).start()
        self.decisions.start()
        if self.settings.run_jobs:
            try:
                self.runner.reap()  # jobs orphaned by a previous crash
            except Exception as exc:
                log.warning("stale-job reaper could not run at startup: %s", exc)
            self.sweep_leftovers()
            self.runner.start()

    def sweep_leftovers(self) -> int:
        """Remove what a crash left: registration staging copies and, on a remote store, uploads that
        never got their manifest (older than an hour: a live registration takes seconds), and training
        folders (older than a job may run). Housekeeping: a failure is logged, never fatal."""
        n = 0
        sweeps = ((self.registry.store.sweep, (3600.0,)),
                  (sweep_staging, (Path(tempfile.gettempdir()), self.settings.job_timeout_seconds, TRAIN_TMP_PREFIX)))
        for sweep, args in sweeps:
            try:
                n += sweep(*args)
            except Exception as exc:  # a remote store's client raises its own errors, not only OSError
                log.warning("could not sweep leftover directories: %s", exc)
        if n:
            log.warning("removed %d directories left by a crashed registration or training job", n)
        return n

    def stop(self) -> None:
        self.watcher.stop()
        self.runner.stop()
        self.decisions.stop()  # flush what is queued: a graceful shutdown loses no decision
        self.engine.dispose()

    def _warm_then_watch(self) -> None:
        try:
            self.embedder.encode(["warm up the encoder"])
            self.embedder_warm = True
        except Exception as exc:
            self.embedder_error = f"embedder failed to load: {exc}"
            log.error(self.embedder_error)
        try:
            self.watcher.refresh()
        except Exception as exc:  # store not reachable yet: /readyz says so, the watcher retries
            log.warning("champion not loaded at startup: %s", exc)
        self.watcher.start()

    def _load(self, registry: ModelRegistry, version: int, task: str | None = None) -> LoadedModel:
        loaded = load_version(registry, version, task)
        ours = self.embedder.identity.revision
        if loaded.info.embedder_revision != ours:
            raise EmbedderMismatch(f"v{version} was trained on embedder {loaded.info.embedder}@"
                                   f"{loaded.info.embedder_revision}, this service runs {self.embedder.identity.key}")
        return loaded

    # ---------------------------------------------------------- readiness
    def readiness(self) -> tuple[list[str], list[str]]:
        """(reasons not to send traffic here, reasons it serves but not as the registry says)."""
        reasons, degraded = [], []
        try:
            with self.engine.connect() as c:
                c.execute(text("SELECT 1"))
        except Exception as exc:
            reasons.append(f"store not reachable: {type(exc).__name__}")
        if not self.watcher.serving:
            reasons.append(self.watcher.last_error or "no champion model loaded for any task (train and promote "
                                                      "one, or run `oirl serve --bootstrap`)")
        else:
            for task, why in sorted(self.watcher.errors.items()):
                # The champion failed to load: with an older model still serving the task it is
                # degraded; with none, that task answers 503, so this worker is not ready.
                (degraded if task in self.watcher.serving else reasons).append(why)
        if not self.embedder_warm:
            reasons.append(self.embedder_error or "embedder warming up")
        return reasons, degraded

    def _job_counts(self) -> dict[tuple[str, str], int]:
        with self.factory() as s:
            return jobs_repo.counts(s)

    # --------------------------------------------------------------- jobs
    def resolve_task(self, name: str | None) -> str:
        """Raises ``oirl.tasks.TaskError`` (a 4xx at the edge). Reads the store: for write paths."""
        return resolve_task(self.factory, name, self.settings.default_task)

    def serving_task(self, name: str | None) -> TaskView:
        """The task a selection means, from the cached catalog (no store round trip per request)."""
        names = self.catalog.names()
        if name is not None and name not in names:
            self.catalog.refresh(force=True)  # maybe created by another worker a moment ago
            names = self.catalog.names()
        return self.catalog.task(choose_task(names, name, self.settings.default_task))

    def submit_retrain(self, params: RetrainParams) -> str:
        params = RetrainParams(**{**asdict(params), "task": self.resolve_task(params.task)})
        return self.runner.submit(RETRAIN, asdict(params))

    def submit_evaluation(self, params: EvaluationParams) -> str:
        params = EvaluationParams(**{**asdict(params), "task": self.resolve_task(params.task)})
        return self.runner.submit(EVALUATION, asdict(params))

    def _retrain_job(self, ctx: JobContext) -> dict:
        from oirl.distributed import ClusterError, training_engine

        params = RetrainParams(**ctx.params)
        # With OIRL_DASK_SCHEDULER the job connects to the cluster for its own duration: a scheduler that is
        # down fails this job with the reason, never the service's start or its serving.
        try:
            with training_engine(self.settings, backend=params.backend,
                                 local_embedder=self.training_embedder) as (embedder, client):
                info, metrics = run_retrain(self.factory, self.registry, embedder, params,
                                            champion=self.watcher.current(params.task), job_id=ctx.job_id,
                                            progress=ctx.progress, min_gate_queries=self.settings.gate_min_queries,
                                            min_lower_bound=self.settings.gate_min_lower_bound, client=client)
        except ClusterError as exc:
            raise JobError(str(exc)) from exc
        return {"version": info.id, "task": info.task, "alias": "challenger", "metrics": info.metrics,
                "promote_url": f"/admin/models/{info.id}/promote"}

    def _evaluation_job(self, ctx: JobContext) -> dict:
        params = EvaluationParams(**ctx.params)
        return run_evaluation(self.factory, self.training_embedder, params, progress=ctx.progress,
                              benchmark_dir=self.settings.resolved_benchmark_dir, registry=self.registry)
