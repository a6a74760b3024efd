"""Fetch and verify: copying from a mirror, downloading over real HTTP, refusing corrupt files."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from oirl.datasets import fetch as fetch_mod
from oirl.datasets.fetch import BenchmarkFileError, ManifestEntry, fetch, verify_file


@pytest.fixture
def tiny_manifest(tmp_path, monkeypatch):
    """Two made-up files with their true checksums, standing in for the real manifest."""
    mirror = tmp_path / "mirror"
    files = {"repo-a/data/one.txt": b"(0, True)\n(1, False)\n", "repo-b/two.csv": b"a,b\n1,2\n"}
    entries = {}
    for rel, content in files.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(content)
        entries[rel] = ManifestEntry(rel, hashlib.sha256(content).hexdigest(), url=f"http://unused/{rel}")
    monkeypatch.setattr(fetch_mod, "manifest", lambda: entries)
    return mirror, entries


def test_copy_from_mirror_verifies_and_second_run_is_noop(tiny_manifest, tmp_path):
    mirror, entries = tiny_manifest
    dest = tmp_path / "dest"
    assert sorted(fetch(dest, mirror=mirror, progress=False)) == sorted(entries)
    for rel in entries:
        assert verify_file(dest, rel).read_bytes() == (mirror / rel).read_bytes()
    assert fetch(dest, mirror=mirror, progress=False) == []


def test_corrupt_mirror_file_names_file_and_checksum_and_writes_nothing(tiny_manifest, tmp_path):
    mirror, entries = tiny_manifest
    (mirror / "repo-b/two.csv").write_bytes(b"a,b\n1,3\n")
    dest = tmp_path / "dest"
    with pytest.raises(BenchmarkFileError) as err:
        fetch(dest, mirror=mirror, paths=["repo-b/two.csv"], progress=False)
    assert "repo-b/two.csv" in str(err.value)
    assert entries["repo-b/two.csv"].sha256 in str(err.value)
    assert not any(p.is_file() for p in dest.rglob("*")), "no partial or corrupt file may be left behind"


def test_missing_mirror_file_is_a_clear_error(tiny_manifest, tmp_path):
    mirror, entries = tiny_manifest
    (mirror / "repo-a/data/one.txt").unlink()
    with pytest.raises(BenchmarkFileError, match="lacks repo-a/data/one.txt"):
        fetch(tmp_path / "dest", mirror=mirror, progress=False)


def test_corrupt_file_in_place_is_refetched(tiny_manifest, tmp_path):
    mirror, _ = tiny_manifest
    dest = tmp_path / "dest"
    fetch(dest, mirror=mirror, progress=False)
    (dest / "repo-a/data/one.txt").write_text("tampered")
    with pytest.raises(BenchmarkFileError, match="corrupt"):
        verify_file(dest, "repo-a/data/one.txt")
    assert fetch(dest, mirror=mirror, progress=False) == ["repo-a/data/one.txt"]
    verify_file(dest, "repo-a/data/one.txt")


def test_download_over_http_from_loopback(tiny_manifest, tmp_path, monkeypatch):
    mirror, entries = tiny_manifest
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        served = {rel: ManifestEntry(rel, e.sha256, f"{base}/{rel}") for rel, e in entries.items()}
        served["repo-a/missing.txt"] = ManifestEntry("repo-a/missing.txt", "0" * 64, f"{base}/repo-a/missing.txt")
        monkeypatch.setattr(fetch_mod, "manifest", lambda: served)
        dest = tmp_path / "dest"
        fetch(dest, paths=list(entries), progress=False)
        assert all((dest / rel).read_bytes() == (mirror / rel).read_bytes() for rel in entries)
        with pytest.raises(BenchmarkFileError, match="could not download repo-a/missing.txt"):
            fetch(dest, paths=["repo-a/missing.txt"], progress=False)
    finally:
        server.shutdown()


def test_real_manifest_lists_every_shared_file():
    entries = fetch_mod.manifest()
    assert len(entries) == 194
    url = entries["SVAMP/LICENSE"].url
    assert url.startswith("https://raw.githubusercontent.com/arkilpatel/SVAMP/689d7cc") and url.endswith("/LICENSE")


@pytest.mark.realdata
def test_real_mirror_verifies(mirror_dir: Path):
    assert fetch_mod.missing_or_corrupt(mirror_dir) == []
