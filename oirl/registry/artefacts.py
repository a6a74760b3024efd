"""Model directories on disk: whole-directory checksums and atomic publication.

A version's directory is written under a temporary name next to its final place, synced,
hashed, and then renamed: a reader (or a crash) sees either no directory or a complete one.
The directory's SHA-256 covers every file's relative path and bytes, so a swapped,
truncated or extra file changes it; the registry refuses to load on any mismatch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path


class ArtefactChecksumError(RuntimeError):
    """A model directory's content does not match the checksum recorded in the registry."""


def dir_sha256(directory: Path) -> str:
    directory = Path(directory)
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        h.update(rel.encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def verify(directory: Path, expected_sha256: str) -> None:
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtefactChecksumError(f"{directory}: model directory is missing")
    actual = dir_sha256(directory)
    if actual != expected_sha256:
        raise ArtefactChecksumError(
            f"{directory}: sha256 {actual[:16]}… does not match the registry's "
            f"{expected_sha256[:16]}…; refusing to load"
        )


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def stage(source: Path, root: Path) -> tuple[Path, str]:
    """Copy ``source`` to a hidden temporary directory under ``root``; return (tmp path, sha256)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".staging-{uuid.uuid4().hex}"
    shutil.copytree(source, tmp)
    _fsync_tree(tmp)
    return tmp, dir_sha256(tmp)


def publish(staged: Path, final: Path) -> None:
    """Rename a staged directory into place (atomic on one filesystem).

    A directory already at ``final`` can only be a leftover of a crash between this rename
    and the database commit (the version number is ours: the caller holds its row), so it
    is moved aside rather than trusted or deleted.
    """
    if final.exists():
        final.rename(final.with_name(f".orphan-{final.name}-{uuid.uuid4().hex[:8]}"))
    os.replace(staged, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # make the rename itself durable
    finally:
        os.close(fd)


def discard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def sweep_staging(root: Path, older_than_seconds: float = 3600.0, prefix: str = ".staging-") -> int:
    """Remove directories named ``prefix*`` under ``root`` left by a crash (a registration's staging
    copy, a training job's temporary folder); return how many.

    Only old ones: another worker may be registering a version (or training) right now.
    """
    import time

    root = Path(root)
    if not root.is_dir():
        return 0
    cutoff = time.time() - older_than_seconds
    stale = []
    for p in root.iterdir():
        try:
            if p.name.startswith(prefix) and p.is_dir() and p.stat().st_mtime < cutoff:
                stale.append(p)
        except OSError:  # vanished meanwhile (its owner finished)
            continue
    for p in stale:
        discard(p)
    return len(stale)
