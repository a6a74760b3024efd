"""Self-describing reward-model artefacts: one backend file + ``metadata.json``.

The metadata records the backend and its parameters, the embedder identity, library
versions, the feature spec, a training-data summary, metrics and the SHA-256 of the
backend file. ``load_artefact`` recomputes that hash and refuses a file that does not
match, so a truncated copy or a swapped file is never served. The directory is written
under a temporary name and renamed into place, so readers never see half an artefact.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

from oirl.datasets.fetch import sha256_of

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
_LIBRARIES = ("prompt-oirl", "numpy", "scikit-learn", "lightgbm", "xgboost", "torch", "sentence-transformers")


class ArtefactError(RuntimeError):
    """A reward-model artefact is missing, of an unknown format, or fails its checksum."""


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def save_artefact(directory, backend, meta: dict, arrays: dict[str, dict] | None = None) -> Path:
    """Write ``directory`` atomically; ``arrays`` maps extra ``.npz`` file names to arrays to store."""
    import numpy as np

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        backend.save(tmp / backend.file_name)
        for name, content in (arrays or {}).items():
            with open(tmp / name, "wb") as fh:  # a file handle: np.savez must not append ".npz"
                np.savez(fh, **content)
        full = {
            "format_version": FORMAT_VERSION,
            "kind": "prompt-reward-model",
            "backend": backend.name,
            "artefact_file": backend.file_name,
            "artefact_sha256": sha256_of(tmp / backend.file_name),
            "extra_files_sha256": {name: sha256_of(tmp / name) for name in (arrays or {})},
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "library_versions": library_versions(),
            **meta,
        }
        (tmp / METADATA_FILE).write_text(json.dumps(full, indent=2, default=_jsonable) + "\n")
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def read_metadata(directory) -> dict:
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise ArtefactError(f"{directory} is not a reward-model artefact: no {METADATA_FILE}")
    meta = json.loads(path.read_text())
    if meta.get("kind") != "prompt-reward-model" or meta.get("format_version") != FORMAT_VERSION:
        raise ArtefactError(f"{path}: unsupported artefact kind/format {meta.get('kind')}/{meta.get('format_version')}")
    return meta


def _verified(file: Path, expected: str) -> Path:
    if not file.is_file():
        raise ArtefactError(f"{file.parent}: missing artefact file {file.name}")
    actual = sha256_of(file)
    if actual != expected:
        raise ArtefactError(f"{file}: sha256 {actual} does not match metadata {expected}; refusing to load")
    return file


def load_artefact(directory):
    """-> (backend, metadata, extra arrays by file name); every file's SHA-256 is checked first."""
    import numpy as np

    from oirl.reward.backends import make_backend

    directory = Path(directory)
    meta = read_metadata(directory)
    file = _verified(directory / meta["artefact_file"], meta["artefact_sha256"])
    extras = {}
    for name, sha in meta.get("extra_files_sha256", {}).items():
        with np.load(_verified(directory / name, sha), allow_pickle=False) as npz:
            extras[name] = {key: npz[key] for key in npz.files}
    backend = make_backend(meta["backend"], meta.get("backend_params"))
    return backend.load(file), meta, extras


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
