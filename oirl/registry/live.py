"""Each task's champion in memory, hot-swapped when its alias moves.

Each serving process polls the ``champion`` aliases of every task every ``poll_seconds``
(one query). When a task's alias points somewhere new, the new version is verified and
loaded *outside* the lock (slow), then that task's reference is swapped under the lock
(instant). Readers take one reference to a ``LoadedModel`` per request and use it to the
end, so a request never mixes two versions and never waits for a load. A version that
fails to load (bad checksum, missing files) is reported and the old champion keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from oirl.registry.registry import ModelRegistry, VersionInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version: int
    info: VersionInfo
    bundle: object  # oirl.registry.bundle.ModelBundle

    @property
    def task(self) -> str:
        return self.bundle.task

    @property
    def model(self):
        return self.bundle.model

    @property
    def policy(self):
        return self.bundle.policy


def load_version(registry: ModelRegistry, version: int, task: str | None = None) -> LoadedModel:
    """Verify the directory's checksum, then load the bundle (model, policy, task, prompts).

    ``task``: the task it is loaded for; only consulted for a version made before tasks
    existed (its row and artefact name none), which a migrated store keeps serving."""
    from oirl.registry.bundle import load_bundle

    info = registry.get(version)
    path = registry.local_dir(info)  # verified (a remote version: fetched into the local cache first)
    return LoadedModel(version=version, info=info, bundle=load_bundle(path, task_hint=info.task or task))


class ChampionWatcher:
    """Keeps ``current(task)`` equal to each task's champion in the registry, within ``poll_seconds``."""

    def __init__(self, registry: ModelRegistry, poll_seconds: float = 1.0,
                 loader: Callable[[ModelRegistry, int, str], LoadedModel] = load_version,
                 on_swap: Callable[[LoadedModel], None] | None = None, retry_failed_seconds: float = 30.0):
        self.registry = registry
        self.poll_seconds = poll_seconds
        self.loader = loader
        self.on_swap = on_swap
        self._current: dict[str, LoadedModel] = {}  # replaced whole on every swap: readers need no lock
        self._lock = threading.Lock()  # serialises swaps
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: dict[str, str] = {}  # task -> why its champion is not the one in the registry
        self.poll_error: str | None = None
        self.champions: dict[str, int] | None = None  # task -> champion alias at the last poll (None: not yet)
        self._failed: dict[str, tuple[int, float]] = {}  # task -> (version, when it failed)
        self.retry_failed_seconds = retry_failed_seconds

    def current(self, task: str) -> LoadedModel | None:
        return self._current.get(task)

    @property
    def serving(self) -> dict[str, LoadedModel]:
        return self._current

    @property
    def last_error(self) -> str | None:
        return self.poll_error or ("; ".join(self.errors.values()) if self.errors else None)

    def refresh(self) -> bool:
        """Check every task's alias once; load and swap those that moved. True if any swap happened."""
        swapped = False
        champions = self.registry.champions()
        for task, target in champions.items():
            swapped |= self._refresh_task(task, target)
        self.champions = champions
        self.poll_error = None
        return swapped

    def _refresh_task(self, task: str, target: int) -> bool:
        current = self._current.get(task)
        if current is not None and current.version == target:
            self.errors.pop(task, None)  # the alias came back to what we serve (e.g. a later rollback)
            self._failed.pop(task, None)
            return False
        failed = self._failed.get(task)
        if failed and failed[0] == target and time.monotonic() - failed[1] < self.retry_failed_seconds:
            return False  # do not re-hash a broken directory every second; retry now and then
        try:
            loaded = self.loader(self.registry, target, task)
        except Exception as exc:  # keep serving the old champion whatever went wrong
            self._failed[task] = (target, time.monotonic())
            self.errors[task] = f"cannot load champion v{target} of task {task!r}: {exc}"
            log.error(self.errors[task])
            return False
        with self._lock:
            if task in self._current and self._current[task].version == loaded.version:
                return False
            self._current = {**self._current, task: loaded}
            self._failed.pop(task, None)
            self.errors.pop(task, None)
        log.info("task %s: serving model v%s", task, loaded.version)
        if self.on_swap:
            self.on_swap(loaded)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as exc:  # the store may be briefly unreachable; try again next tick
                self.poll_error = f"champion poll failed: {exc}"
                log.warning(self.poll_error)

    def start(self) -> None:
        # start() runs on the service's startup thread, stop() on the lifespan's: the lock keeps
        # stop() from seeing a thread object that is not started yet, and a stopped watcher
        # from starting afterwards.
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
                thread.start()
                self._thread = thread

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
