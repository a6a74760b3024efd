"""The champion in memory, hot-swapped when the alias moves.

Each serving process polls the ``champion`` alias every ``poll_seconds``. When it points
somewhere new, the new version is verified and loaded *outside* the lock (slow), then the
reference is swapped under the lock (instant). Readers take one reference to a
``LoadedModel`` per request and use it to the end, so a request never mixes two versions
and never waits for a load. A version that fails to load (bad checksum, missing files) is
reported and the old champion keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from oirl.registry import artefacts
from oirl.registry.registry import ModelRegistry, VersionInfo
from oirl.store.registry_repo import CHAMPION

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version: int
    info: VersionInfo
    model: object  # a fitted PromptRewardModel
    policy: object | None  # oirl.select.SelectionPolicy, or None (plain argmax)


def load_version(registry: ModelRegistry, version: int) -> LoadedModel:
    """Verify the directory's checksum, then load the model and its selection policy."""
    from oirl.reward import PromptRewardModel
    from oirl.select import SelectionPolicy

    info = registry.get(version)
    path = Path(info.artefact_path)
    artefacts.verify(path, info.artefact_sha256)
    model = PromptRewardModel.load(path)
    policy_dict = (getattr(model, "metadata_", {}) or {}).get("policy")
    policy = SelectionPolicy.from_dict(policy_dict) if policy_dict else None
    return LoadedModel(version=version, info=info, model=model, policy=policy)


class ChampionWatcher:
    """Keeps ``current`` equal to the registry's champion, within ``poll_seconds``."""

    def __init__(self, registry: ModelRegistry, poll_seconds: float = 1.0,
                 loader: Callable[[ModelRegistry, int], LoadedModel] = load_version,
                 on_swap: Callable[[LoadedModel], None] | None = None, retry_failed_seconds: float = 30.0):
        self.registry = registry
        self.poll_seconds = poll_seconds
        self.loader = loader
        self.on_swap = on_swap
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()  # serialises swaps; readers never take it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self._failed_version: int | None = None
        self._failed_at = 0.0
        self.retry_failed_seconds = retry_failed_seconds

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def refresh(self) -> bool:
        """Check the alias once; load and swap if it moved. True if a swap happened."""
        target = self.registry.alias(CHAMPION)
        current = self._current
        if target is None or (current is not None and current.version == target):
            return False
        if target == self._failed_version and time.monotonic() - self._failed_at < self.retry_failed_seconds:
            return False  # do not re-hash a broken directory every second; retry now and then
        try:
            loaded = self.loader(self.registry, target)
        except Exception as exc:  # keep serving the old champion whatever went wrong
            self._failed_version, self._failed_at = target, time.monotonic()
            self.last_error = f"cannot load champion v{target}: {exc}"
            log.error(self.last_error)
            return False
        with self._lock:
            if self._current is not None and self._current.version == loaded.version:
                return False
            self._current = loaded
            self._failed_version = None
            self.last_error = None
        log.info("serving model v%s", loaded.version)
        if self.on_swap:
            self.on_swap(loaded)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as exc:  # the store may be briefly unreachable; try again next tick
                self.last_error = f"champion poll failed: {exc}"
                log.warning(self.last_error)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
