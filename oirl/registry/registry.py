"""The model registry: immutable numbered versions on disk, movable aliases in the store.

- ``register(dir)`` copies a saved ``PromptRewardModel`` directory to
  ``<artefact root>/<version>/`` (staged, hashed, renamed) and records a row with its
  metrics, parameters, embedder, data snapshot and SHA-256, in one transaction.
- ``load(version)`` refuses any directory whose SHA-256 differs from the row's.
- ``promote`` is gated: a version replaces the champion only if it was evaluated against
  that same champion on the same held-out split and is not worse (or ``force``).
- ``rollback`` returns the champion to where it was before the last promotion, replaying
  the alias history as a stack so repeated rollbacks keep walking back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from oirl.registry import artefacts
from oirl.store import registry_repo as repo
from oirl.store.engine import transaction
from oirl.store.models import ModelVersion

ROLLBACK_PREFIX = "rollback"
# Accuracy is a mean over a few hundred held-out queries; ties within this are "not worse".
GATE_TOLERANCE = 1e-9


class RegistryError(RuntimeError):
    """Base class; ``str()`` is a message fit for a user."""


class VersionNotFound(RegistryError):
    pass


class PromotionRefused(RegistryError):
    pass


@dataclass(frozen=True)
class VersionInfo:
    id: int
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

    @classmethod
    def of(cls, row: ModelVersion, aliases: dict[str, int]) -> VersionInfo:
        return cls(
            id=row.id, created_at=row.created_at, backend=row.backend, params=row.params or {},
            embedder=row.embedder, embedder_revision=row.embedder_revision,
            library_versions=row.library_versions or {}, data_snapshot=row.data_snapshot or {},
            metrics=row.metrics or {}, artefact_path=row.artefact_path, artefact_sha256=row.artefact_sha256,
            job_id=row.job_id, aliases=sorted(a for a, v in aliases.items() if v == row.id),
        )


@dataclass(frozen=True)
class AliasMove:
    alias: str
    version: int
    previous: int | None


class ModelRegistry:
    def __init__(self, factory: sessionmaker[Session], root: Path):
        self.factory = factory
        self.root = Path(root)

    # ------------------------------------------------------------ register
    def register(self, model_dir: Path, *, metrics: dict | None = None, data_snapshot: dict | None = None,
                 job_id: str | None = None, alias: str | None = None) -> VersionInfo:
        """Copy a saved reward-model directory into the registry as the next version."""
        from oirl.reward import read_metadata

        meta = read_metadata(model_dir)  # refuses anything that is not a reward-model artefact
        embedder = (meta.get("params") or {}).get("embedder") or {}
        staged, sha = artefacts.stage(Path(model_dir), self.root)
        try:
            with transaction(self.factory) as s:
                # Inserting the row first takes the version number (and, on SQLite, the write
                # lock) before the directory is renamed into place under that number.
                row = repo.add_version(
                    s, backend=meta.get("backend", "unknown"),
                    params={"model": meta.get("params"), "backend": meta.get("backend_params"),
                            "n_rounds": meta.get("n_rounds")},
                    embedder=embedder.get("name", "unknown"), embedder_revision=embedder.get("revision", "unknown"),
                    library_versions=meta.get("library_versions") or {},
                    data_snapshot=data_snapshot or meta.get("training_summary") or {},
                    metrics=metrics if metrics is not None else (meta.get("metrics") or {}),
                    artefact_path="", artefact_sha256=sha, job_id=job_id,
                )
                final = self.root / str(row.id)
                row.artefact_path = str(final)
                artefacts.publish(staged, final)
                if alias:
                    repo.move_alias(s, alias, row.id, reason=f"registered v{row.id}")
                s.flush()
                info = VersionInfo.of(row, repo.aliases(s))
        finally:
            if staged.exists():
                artefacts.discard(staged)
        return info

    # --------------------------------------------------------------- read
    def get(self, version: int) -> VersionInfo:
        with self.factory() as s:
            row = repo.get_version(s, version)
            if row is None:
                raise VersionNotFound(f"model version {version} does not exist")
            return VersionInfo.of(row, repo.aliases(s))

    def list(self) -> list[VersionInfo]:
        with self.factory() as s:
            al = repo.aliases(s)
            return [VersionInfo.of(r, al) for r in repo.list_versions(s)]

    def aliases(self) -> dict[str, int]:
        with self.factory() as s:
            return repo.aliases(s)

    def alias(self, name: str) -> int | None:
        with self.factory() as s:
            return repo.alias_version_id(s, name)

    def verify(self, version: int) -> VersionInfo:
        info = self.get(version)
        artefacts.verify(Path(info.artefact_path), info.artefact_sha256)
        return info

    # ------------------------------------------------------------- aliases
    def promote(self, version: int, *, force: bool = False, reason: str = "") -> AliasMove:
        self.verify(version)  # never point the champion at a directory that would not load
        with transaction(self.factory) as s:
            row = repo.get_version(s, version)
            if row is None:
                raise VersionNotFound(f"model version {version} does not exist")
            current = repo.alias_version_id(s, repo.CHAMPION)
            if current == version:
                return AliasMove(repo.CHAMPION, version, current)
            if not force and current is not None:
                check_gate(row.metrics or {}, version, current)
            previous = repo.move_alias(s, repo.CHAMPION, version, reason=reason or ("forced" if force else "promoted"))
        return AliasMove(repo.CHAMPION, version, previous)

    def rollback(self, reason: str = "") -> AliasMove:
        with transaction(self.factory) as s:
            current = repo.alias_version_id(s, repo.CHAMPION)
            stack = champion_stack(repo.alias_history(s, repo.CHAMPION, limit=10_000))
            if current is None or len(stack) < 2:
                raise PromotionRefused("no previous champion to roll back to")
            target = stack[-2]
            repo.move_alias(s, repo.CHAMPION, target, reason=f"{ROLLBACK_PREFIX} from v{current}: {reason}".strip(": "))
        return AliasMove(repo.CHAMPION, target, current)


def check_gate(metrics: dict, version: int, champion: int) -> None:
    gate = metrics.get("gate") or {}
    if gate.get("champion_version") != champion:
        raise PromotionRefused(
            f"version {version} was not evaluated against the current champion v{champion} on the same "
            "held-out split (retrain to get a challenger that is, or force the promotion)"
        )
    ours, theirs = gate.get("accuracy"), gate.get("champion_accuracy")
    if ours is None or theirs is None:
        raise PromotionRefused(f"version {version} has no held-out accuracy to compare; force the promotion")
    if ours < theirs - GATE_TOLERANCE:
        raise PromotionRefused(
            f"version {version} is worse than champion v{champion} on the same held-out split "
            f"(accuracy {ours:.4f} < {theirs:.4f}); force the promotion to override"
        )


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
