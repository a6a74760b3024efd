"""Fetch and verify the public benchmark files.

The manifest (``manifest.json``) holds facts, not data: each file's path, its upstream
repository at a pinned commit, and its SHA-256. ``fetch`` downloads from the raw GitHub
URLs or copies from a local mirror with the same layout. Every file is written to a
temporary name, verified, then renamed into place, so a failed or corrupt transfer never
leaves a half-written file that a loader could read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tqdm import tqdm

MANIFEST_PATH = Path(__file__).with_name("manifest.json")


class BenchmarkFileError(RuntimeError):
    """A benchmark file is missing, unreadable or does not match its pinned checksum."""


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    sha256: str
    url: str


@lru_cache(maxsize=1)
def manifest() -> dict[str, ManifestEntry]:
    raw = json.loads(MANIFEST_PATH.read_text())
    entries = {}
    for f in raw["files"]:
        top, rest = f["path"].split("/", 1)
        url = raw["sources"][top]["url"].format(path=rest)
        entries[f["path"]] = ManifestEntry(f["path"], f["sha256"], url)
    return entries


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(root: Path, rel: str) -> Path:
    """Return ``root/rel`` after checking it against the manifest; raise a clear error otherwise."""
    entry = manifest()[rel]
    path = Path(root) / rel
    if not path.is_file():
        raise BenchmarkFileError(
            f"missing benchmark file {rel} under {root} (expected sha256 {entry.sha256}); "
            "run `oirl data fetch` (or `oirl data fetch --mirror DIR`)"
        )
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise BenchmarkFileError(
            f"corrupt benchmark file {path}: sha256 {actual}, expected {entry.sha256}"
        )
    return path


def missing_or_corrupt(root: Path, paths: Iterable[str] | None = None) -> list[str]:
    bad = []
    for rel in paths if paths is not None else manifest():
        try:
            verify_file(root, rel)
        except BenchmarkFileError:
            bad.append(rel)
    return bad


def _transfer(entry: ManifestEntry, dest_root: Path, mirror: Path | None, timeout: float) -> None:
    target = dest_root / entry.path
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".part-", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if mirror is not None:
                source = mirror / entry.path
                if not source.is_file():
                    raise BenchmarkFileError(
                        f"mirror {mirror} lacks {entry.path} (expected sha256 {entry.sha256})"
                    )
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out)
            else:
                try:
                    with urllib.request.urlopen(entry.url, timeout=timeout) as resp:
                        shutil.copyfileobj(resp, out)
                except OSError as exc:
                    raise BenchmarkFileError(
                        f"could not download {entry.path} from {entry.url}: {exc}; "
                        "with no internet, pass --mirror DIR (or set OIRL_MIRROR_DIR)"
                    ) from exc
        actual = sha256_of(tmp)
        if actual != entry.sha256:
            origin = mirror / entry.path if mirror is not None else entry.url
            raise BenchmarkFileError(
                f"checksum mismatch for {entry.path} from {origin}: sha256 {actual}, expected {entry.sha256}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(
    dest: Path,
    mirror: Path | None = None,
    paths: Iterable[str] | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> list[str]:
    """Make ``dest`` hold verified copies of the manifest files; return the paths transferred.

    Files already present with the right checksum are left alone, so a second run is a no-op.
    """
    dest = Path(dest)
    mirror = Path(mirror) if mirror is not None else None
    todo = missing_or_corrupt(dest, paths)
    for rel in tqdm(todo, desc="fetch benchmark files", unit="file", disable=not progress or not todo):
        _transfer(manifest()[rel], dest, mirror, timeout)
    return todo
