"""The model registry: immutable numbered versions on disk, movable per-task aliases in the store.

- ``register(dir)`` copies a saved model bundle (``oirl.registry.bundle``) to
  ``<artefact root>/<version>/`` (staged, hashed, renamed) and records a row with its task,
  metrics, parameters, embedder, data scope and SHA-256, in one transaction.
- ``load(version)`` refuses any directory whose SHA-256 differs from the row's.
- ``promote`` is gated: a version replaces its task's champion only if it was judged against
  that same champion on the same held-out queries and the gate passed (or ``force``).
- ``rollback`` returns a task's champion to where it was before its last promotion,
  replaying the task's alias history as a stack so repeated rollbacks keep walking back.
Each task has its own champion and challenger; moving one task's aliases never touches another's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from oirl.registry import stores
from oirl.store import registry_repo as repo
from oirl.store import tasks_repo
from oirl.store.engine import transaction
from oirl.store.models import ModelVersion

ROLLBACK_PREFIX = "rollback"


class RegistryError(RuntimeError):
    """Base class; ``str()`` is a message fit for a user."""


class VersionNotFound(RegistryError):
    pass


class PromotionRefused(RegistryError):
    pass


class TaskNotFound(RegistryError):
    pass


@dataclass(frozen=True)
class VersionInfo:
    id: int
    task: str | None
    created_at: datetime
    backend: str
    params: dict[str, Any]
    embedder: str
    embedder_revision: str
    library_versions: dict[str, Any]
    data_snapshot: dict[str, Any]
    metrics: dict[str, Any]
    artefact_path: str
    artefact_sha256: str
    job_id: str | None
    aliases: list[str] = field(default_factory=list)

    @property
    def gate(self) -> dict:
        return self.metrics.get("gate") or {}

    @classmethod
    def of(cls, row: ModelVersion, aliases: dict[tuple[int, str], int], task_names: dict[int, str]) -> VersionInfo:
        return cls(
            id=row.id, task=task_names.get(row.task_id), created_at=row.created_at, backend=row.backend,
            params=row.params or {},
            embedder=row.embedder, embedder_revision=row.embedder_revision,
            library_versions=row.library_versions or {}, data_snapshot=row.data_snapshot or {},
            metrics=row.metrics or {}, artefact_path=row.artefact_path, artefact_sha256=row.artefact_sha256,
            job_id=row.job_id, aliases=sorted(a for (t, a), v in aliases.items() if v == row.id and t == row.task_id),
        )


@dataclass(frozen=True)
class AliasMove:
    task: str
    alias: str
    version: int
    previous: int | None


class ModelRegistry:
    """``root``: a directory or an fsspec URL (``oirl.registry.stores``); ``cache_dir``: where a remote
    store's versions are copied to be loaded (default ``<home>/cache/artefacts``)."""

    def __init__(self, factory: sessionmaker[Session], root: Path | str, *, cache_dir: Path | None = None,
                 storage_options: dict[str, Any] | None = None):
        self.factory = factory
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.storage_options = dict(storage_options or {})
        remote = stores.is_remote(root)
        self.store = stores.open_store(root, cache_dir=self.cache_dir if remote else None,
                                       storage_options=self.storage_options)
        self.root = self.store.root

    @property
    def cache_dir(self) -> Path:
        if self._cache_dir is None:  # only a remote version needs one: read the settings then, not before
            from oirl.settings import get_settings

            self._cache_dir = get_settings().resolved_artefact_cache_dir
        return self._cache_dir

    @classmethod
    def from_settings(cls, factory: sessionmaker[Session], settings) -> ModelRegistry:
        return cls(factory, settings.resolved_artefact_dir, cache_dir=settings.resolved_artefact_cache_dir,
                   storage_options=settings.artefact_storage_options)

    # -------------------------------------------------------------- helpers
    @staticmethod
    def _task_id(s: Session, task: str) -> int:
        row = tasks_repo.get_task(s, task)
        if row is None:
            known = ", ".join(tasks_repo.task_names(s)) or "none yet"
            raise TaskNotFound(f"task {task!r} does not exist (tasks: {known})")
        return row.id

    @staticmethod
    def _names(s: Session) -> dict[int, str]:
        return {t.id: t.name for t in tasks_repo.list_tasks(s)}

    def _info(self, s: Session, row: ModelVersion) -> VersionInfo:
        return VersionInfo.of(row, repo.aliases(s, row.task_id), self._names(s))

    # ------------------------------------------------------------ register
    def register(self, model_dir: Path, *, job_id: str | None = None, alias: str | None = None) -> VersionInfo:
        """Copy a saved model bundle into the registry as the next version of its task."""
        from oirl.registry.bundle import read_bundle_metadata
        from oirl.reward import read_metadata

        bundle = read_bundle_metadata(model_dir)  # refuses anything that is not a model bundle
        meta = read_metadata(model_dir)
        embedder = (meta.get("params") or {}).get("embedder") or {}
        with self.factory() as s:
            self._task_id(s, bundle["task"])  # fail before copying anything
        staged, sha = self.store.stage(Path(model_dir))
        try:
            with transaction(self.factory) as s:
                task_id = self._task_id(s, bundle["task"])
                # Inserting the row first takes the version number (and, on SQLite, the write
                # lock) before the directory is published under that number (renamed into place,
                # or uploaded with its manifest last); the commit below is when the version exists.
                row = repo.add_version(
                    s, task_id=task_id, backend=meta.get("backend", "unknown"),
                    params={"model": meta.get("params"), "backend": meta.get("backend_params"),
                            "n_rounds": meta.get("n_rounds")},
                    embedder=embedder.get("name", "unknown"), embedder_revision=embedder.get("revision", "unknown"),
                    library_versions=meta.get("library_versions") or {},
                    data_snapshot=bundle.get("data_scope") or {}, metrics=bundle["metrics"],
                    artefact_path="", artefact_sha256=sha, job_id=job_id,
                )
                row.artefact_path = self.store.publish(staged, row.id, sha)
                if alias:
                    repo.move_alias(s, task_id, alias, row.id, reason=f"registered v{row.id}")
                s.flush()
                info = self._info(s, row)
        finally:
            self.store.discard(staged)
        return info

    # --------------------------------------------------------------- read
    def get(self, version: int) -> VersionInfo:
        with self.factory() as s:
            row = repo.get_version(s, version)
            if row is None:
                raise VersionNotFound(f"model version {version} does not exist")
            return self._info(s, row)

    def list(self, task: str | None = None) -> list[VersionInfo]:
        with self.factory() as s:
            task_id = None if task is None else self._task_id(s, task)
            al, names = repo.aliases(s), self._names(s)
            return [VersionInfo.of(r, al, names) for r in repo.list_versions(s, task_id)]

    def aliases(self, task: str | None = None) -> dict[str, dict[str, int]]:
        """task -> {alias -> version}."""
        with self.factory() as s:
            task_id = None if task is None else self._task_id(s, task)
            names = self._names(s)
            out: dict[str, dict[str, int]] = {}
            for (t, a), v in sorted(repo.aliases(s, task_id).items()):
                out.setdefault(names[t], {})[a] = v
            return out

    def alias(self, task: str, name: str) -> int | None:
        with self.factory() as s:
            return repo.alias_version_id(s, self._task_id(s, task), name)

    def champions(self) -> dict[str, int]:
        """task -> champion version, every task that has one (one query: the watchers poll this)."""
        return {t: a[repo.CHAMPION] for t, a in self.aliases().items() if repo.CHAMPION in a}

    def history(self, task: str, alias: str = repo.CHAMPION, limit: int = 50) -> list[dict]:
        with self.factory() as s:
            events = repo.alias_history(s, self._task_id(s, task), alias, limit)
            return [{"version": e.version_id, "previous": e.previous_version_id, "reason": e.reason,
                     "at": e.created_at} for e in events]

    def verify(self, version: int) -> VersionInfo:
        info = self.get(version)
        self.local_dir(info)
        return info

    def local_dir(self, info: VersionInfo) -> Path:
        """A local directory with exactly the version's files (SHA-256 checked), or ``ArtefactChecksumError``:
        the store's own directory, or a remote version's verified copy in the local cache."""
        return stores.checkout(info.artefact_path, info.artefact_sha256, info.id, self.cache_dir,
                               self.storage_options)

    # ------------------------------------------------------------- aliases
    def promote(self, version: int, *, force: bool = False, reason: str = "") -> AliasMove:
        """Make ``version`` its task's champion (gated unless ``force``)."""
        info = self.verify(version)  # never point the champion at a directory that would not load
        if info.task is None:
            raise PromotionRefused(f"version {version} belongs to no task (made before tasks existed); retrain it")
        with transaction(self.factory) as s:
            task_id = self._task_id(s, info.task)
            current = repo.alias_version_id(s, task_id, repo.CHAMPION)
            if current == version:
                return AliasMove(info.task, repo.CHAMPION, version, current)
            if not force:
                check_job_finished(s, info)
            if not force and current is not None:
                check_gate(info.metrics, version, current)
            # The prefix keeps a user's reason from ever reading as a rollback in the history.
            kind = "forced" if force else "promoted"
            previous = repo.move_alias(s, task_id, repo.CHAMPION, version,
                                       reason=f"{kind}: {reason}" if reason else kind)
        return AliasMove(info.task, repo.CHAMPION, version, previous)

    def rollback(self, task: str, reason: str = "") -> AliasMove:
        """Return the task's champion to the version before its last promotion.

        The target is verified first, like a promotion: a rollback never points the champion at
        a directory that would not load (``ArtefactChecksumError``; nothing moves)."""
        with self.factory() as s:
            current, target = self._rollback_target(s, task)
        self.verify(target)  # hashing is file I/O: not inside the write transaction
        with transaction(self.factory) as s:
            if self._rollback_target(s, task) != (current, target):
                raise PromotionRefused(f"task {task!r}: the champion moved during the rollback; try again")
            repo.move_alias(s, self._task_id(s, task), repo.CHAMPION, target,
                            reason=f"{ROLLBACK_PREFIX} from v{current}: {reason}".strip(": "))
        return AliasMove(task, repo.CHAMPION, target, current)

    def _rollback_target(self, s: Session, task: str) -> tuple[int, int]:
        task_id = self._task_id(s, task)
        current = repo.alias_version_id(s, task_id, repo.CHAMPION)
        stack = champion_stack(repo.alias_history(s, task_id, repo.CHAMPION, limit=10_000))
        if current is None or len(stack) < 2:
            raise PromotionRefused(f"task {task!r} has no previous champion to roll back to")
        return current, stack[-2]


def check_job_finished(s: Session, info: VersionInfo) -> None:
    """Refuse a version whose job failed after registering it (killed between the version's commit and its
    own finish): what a failed job made is never promoted without force."""
    from oirl.store.jobs_repo import FAILED, get_job

    job = get_job(s, info.job_id) if info.job_id else None
    if job is not None and job.status == FAILED:
        raise PromotionRefused(f"version {info.id} was registered by job {job.id}, which then failed ({job.error}); "
                               "retrain, or force the promotion to override")


def check_gate(metrics: dict, version: int, champion: int) -> None:
    """Refuse unless the version's recorded gate judged it against ``champion`` and passed."""
    gate = metrics.get("gate") or {}
    if gate.get("champion_version") != champion:
        raise PromotionRefused(
            f"version {version} was not judged against the current champion v{champion} on the same held-out "
            "queries (retrain to get a challenger that is, or force the promotion)"
        )
    if gate.get("verdict") != "pass":
        raise PromotionRefused(f"version {version} did not pass the gate against champion v{champion}: "
                               f"{gate.get('reason') or gate.get('verdict')}; force the promotion to override")


def champion_stack(events_newest_first: list) -> list[int]:
    """Replay alias moves oldest first: a promotion pushes, a rollback pops."""
    stack: list[int] = []
    for ev in reversed(events_newest_first):
        if ev.reason.startswith(ROLLBACK_PREFIX) and stack:
            stack.pop()
            if not stack or stack[-1] != ev.version_id:  # history edited by hand: trust the event
                stack.append(ev.version_id)
        else:
            stack.append(ev.version_id)
    return stack
