"""Where model versions live: a local directory, or any fsspec URL (``s3://``, ``gs://``, ...).

One interface, two implementations, chosen by ``open_store`` from the location:

- ``LocalArtefactStore`` (a path or ``file://`` URL): today's behaviour exactly: a staging
  copy under the root, fsync, hash, ``os.replace`` into ``<root>/<version>``.
- ``FsspecArtefactStore`` (any other scheme): object stores have no atomic directory rename,
  so a version's files are uploaded under ``<root>/<version>/`` and a small manifest (file list
  with sizes and SHA-256s, and the directory's SHA-256) is written *last*. A single-object PUT is
  atomic on S3 and GCS, so the manifest is the commit marker: a version directory without it is
  an interrupted upload, never loaded, and swept once old.

Either way the database commit is still the point where a version exists, and readers get a
*local* directory verified against the row's SHA-256 (``checkout``): a local store's own
directory, or a remote version's copy in a local cache, downloaded once and re-downloaded if it
is ever found corrupt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from oirl.registry import artefacts
from oirl.registry.artefacts import ArtefactChecksumError

log = logging.getLogger(__name__)

MANIFEST = ".oirl-manifest.json"  # inside the version directory; never part of its SHA-256
MANIFEST_FORMAT = 1
DOWNLOAD_PREFIX = ".download-"  # a fetch in progress in the local cache, renamed into place once verified


def is_remote(location: str | os.PathLike) -> bool:
    """True for a URL that needs fsspec; plain paths and ``file://`` URLs are local."""
    text = str(location)
    return isinstance(location, str) and "://" in text and not text.startswith("file://")


def local_path(location: str | os.PathLike) -> Path:
    text = str(location)
    return Path(text.removeprefix("file://")) if text.startswith("file://") else Path(location)


class ArtefactStore(Protocol):
    root: Path | str
    """A local store's directory, or a remote store's URL (as the rows record it)."""

    def stage(self, source: Path) -> tuple[Path, str]:
        """Freeze a local copy of ``source``; return (staged directory, its SHA-256)."""

    def publish(self, staged: Path, version: int, sha256: str) -> str:
        """Make the staged copy version ``version``; return the location the row records."""

    def discard(self, staged: Path) -> None: ...

    def sweep(self, older_than_seconds: float) -> int:
        """Remove what a crash left (staging copies, interrupted uploads) older than the age; never a version."""


def open_store(location: Path | str, *, cache_dir: Path | None = None,
               storage_options: dict[str, Any] | None = None) -> ArtefactStore:
    """``cache_dir``: a remote store's staging copies (and, for readers, fetched versions)."""
    if is_remote(location):
        if cache_dir is None:
            raise ValueError(f"{location}: a remote artefact store needs a local cache directory")
        return FsspecArtefactStore(str(location), cache_dir, storage_options)
    return LocalArtefactStore(local_path(location))


class LocalArtefactStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def stage(self, source: Path) -> tuple[Path, str]:
        return artefacts.stage(Path(source), self.root)

    def publish(self, staged: Path, version: int, sha256: str) -> str:
        final = self.root / str(version)
        artefacts.publish(staged, final)
        return str(final)

    def discard(self, staged: Path) -> None:
        if staged.exists():
            artefacts.discard(staged)

    def sweep(self, older_than_seconds: float) -> int:
        return artefacts.sweep_staging(self.root, older_than_seconds)


class FsspecArtefactStore:
    """Versions under an fsspec URL (any filesystem fsspec knows except the local one: ``open_store``
    sends paths and ``file://`` to ``LocalArtefactStore``, which can rename atomically, and ``checkout``
    verifies a ``file://`` row in place, where a manifest would count as an extra file)."""

    def __init__(self, url: str, cache_dir: Path, storage_options: dict[str, Any] | None = None):
        import fsspec  # lazily: a local deployment never needs it

        self.root = url.rstrip("/")
        self.cache_dir = Path(cache_dir)
        self.storage_options = dict(storage_options or {})
        self.fs, self.path = fsspec.core.url_to_fs(self.root, **self.storage_options)
        self.path = self.path.rstrip("/")

    # -------------------------------------------------------------- write
    def stage(self, source: Path) -> tuple[Path, str]:
        # A local frozen copy: what is hashed is exactly what is uploaded, even if the source changes.
        return artefacts.stage(Path(source), self.cache_dir)

    def publish(self, staged: Path, version: int, sha256: str) -> str:
        dest = f"{self.path}/{version}"
        self._remove_leftover(dest)
        self.upload(staged, version)
        self.write_manifest(staged, version, sha256)
        # The staged copy is exactly the version: keep it as this machine's cached copy, so the
        # promotion that often follows does not download what was just uploaded. Named by content,
        # it stays right even if the commit fails and the number is taken again by other content.
        try:
            _install(staged, self.cache_dir / cache_name(version, sha256), sha256)
        except OSError as exc:  # only a shortcut: readers download what they miss
            log.warning("could not keep a local copy of v%s: %s", version, exc)
        return f"{self.root}/{version}"

    def _remove_leftover(self, dest: str) -> None:
        # Files already under our number were left by an interrupted registration: the caller holds
        # the row that took this number, so no committed row can point at them.
        self.fs.invalidate_cache(dest)
        if self.fs.exists(dest):
            log.warning("%s: removing files left by an interrupted registration", dest)
            self.fs.rm(dest, recursive=True)

    def upload(self, staged: Path, version: int) -> None:
        """Every file of the version; not visible to readers until ``write_manifest``."""
        for rel in _files(staged):
            self.fs.put_file(str(staged / rel), f"{self.path}/{version}/{rel}")

    def write_manifest(self, staged: Path, version: int, sha256: str) -> None:
        manifest = {"format": MANIFEST_FORMAT, "version": version, "sha256": sha256,
                    "files": [{"path": rel, "size": (staged / rel).stat().st_size, "sha256": _file_sha256(staged / rel)}
                              for rel in _files(staged)]}
        self.fs.pipe_file(f"{self.path}/{version}/{MANIFEST}", json.dumps(manifest, indent=1).encode())

    def discard(self, staged: Path) -> None:
        if staged.exists():
            artefacts.discard(staged)

    # -------------------------------------------------------------- sweep
    def sweep(self, older_than_seconds: float) -> int:
        n = artefacts.sweep_staging(self.cache_dir, older_than_seconds)
        n += artefacts.sweep_staging(self.cache_dir, older_than_seconds, prefix=DOWNLOAD_PREFIX)
        cutoff = time.time() - older_than_seconds
        self.fs.invalidate_cache(self.path)  # another replica may have written since we last listed
        try:
            entries = self.fs.ls(self.path, detail=True)
        except FileNotFoundError:
            return n
        for entry in entries:
            name = PurePosixPath(entry["name"]).name
            if entry.get("type") != "directory" or not name.isdigit():
                continue
            files = self.fs.find(entry["name"], detail=True)
            if any(PurePosixPath(f).name == MANIFEST for f in files):
                continue  # published (its row may or may not have committed): never ours to remove
            ages = [_modified(info) for info in files.values()]
            # Only old uploads: a registration may be uploading right now; an unknown age is kept.
            if not ages or None in ages or max(ages) > cutoff:
                continue
            log.warning("%s: removing an interrupted upload (no manifest)", entry["name"])
            self.fs.rm(entry["name"], recursive=True)
            n += 1
        return n


# ------------------------------------------------------------------- read

def checkout(artefact_path: str, sha256: str, version: int, cache_dir: Path,
             storage_options: dict[str, Any] | None = None) -> Path:
    """A local directory holding exactly the version the row describes, or ``ArtefactChecksumError``.

    A local row's directory is verified in place. A remote one is fetched into
    ``<cache_dir>/<version>-<sha>``: a copy that still verifies is reused, a corrupt one is
    fetched again; a remote version without a manifest, or whose files do not match it, is refused."""
    if not is_remote(artefact_path):
        path = local_path(artefact_path)
        artefacts.verify(path, sha256)
        return path
    cache_dir = Path(cache_dir)
    target = cache_dir / cache_name(version, sha256)
    if target.is_dir():
        try:
            artefacts.verify(target, sha256)
            return target
        except ArtefactChecksumError as exc:
            log.warning("local copy of v%s is damaged (%s); fetching it again", version, exc)
    tmp = _download(artefact_path, sha256, cache_dir, storage_options or {})
    try:
        _install(tmp, target, sha256)
    finally:
        if tmp.exists():
            artefacts.discard(tmp)
    return target


def cache_name(version: int, sha256: str) -> str:
    return f"{version}-{sha256[:16]}"


def _download(url: str, sha256: str, cache_dir: Path, storage_options: dict[str, Any]) -> Path:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    path = path.rstrip("/")
    try:  # a direct read, not a listing: listings may be cached and miss a manifest written since
        manifest = json.loads(fs.cat_file(f"{path}/{MANIFEST}"))
    except FileNotFoundError:
        raise ArtefactChecksumError(f"{url}: no manifest, the upload never completed; refusing to load") from None
    if manifest.get("sha256") != sha256:
        raise ArtefactChecksumError(f"{url}: manifest is for sha256 {str(manifest.get('sha256'))[:16]}…, the "
                                    f"registry's is {sha256[:16]}…; refusing to load")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f"{DOWNLOAD_PREFIX}{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        for entry in manifest["files"]:
            rel = _safe_relative(entry["path"], url)
            local = tmp / rel
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                fs.get_file(f"{path}/{rel}", str(local))
            except FileNotFoundError:
                raise ArtefactChecksumError(f"{url}: {rel} is missing; refusing to load") from None
            if local.stat().st_size != entry["size"] or _file_sha256(local) != entry["sha256"]:
                raise ArtefactChecksumError(f"{url}: {rel} does not match its manifest; refusing to load")
        artefacts.verify(tmp, sha256)  # the row's definition, over the whole directory
    except BaseException:
        artefacts.discard(tmp)
        raise
    return tmp


def _install(tmp: Path, target: Path, sha256: str) -> None:
    """Move a verified download into place; another worker on this machine may be doing the same."""
    if target.exists():
        try:
            artefacts.verify(target, sha256)
            return  # someone else installed a good copy meanwhile
        except ArtefactChecksumError:
            aside = target.with_name(f".damaged-{target.name}-{uuid.uuid4().hex[:8]}")
            target.rename(aside)
            artefacts.discard(aside)
    try:
        os.replace(tmp, target)
    except OSError:  # a non-empty target appeared: another process won the race; theirs must verify
        artefacts.verify(target, sha256)


def _files(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _safe_relative(rel: str, url: str) -> str:
    """A manifest is data from shared storage: never let it write outside the download directory."""
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ArtefactChecksumError(f"{url}: manifest names an unsafe path {rel!r}; refusing to load")
    return p.as_posix()


def _modified(info: dict) -> float | None:
    """Last-modified time of an fsspec entry: each filesystem spells it differently."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created", "mtime_ns"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return value / 1e9 if key == "mtime_ns" else float(value)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None
