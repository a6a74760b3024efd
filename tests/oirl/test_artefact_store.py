"""Artefact stores: a local directory (atomic rename) and an fsspec URL (manifest last), same guarantees.

Remote cases run twice: on fsspec's in-memory filesystem (fast) and on a real S3-compatible
server over HTTP on 127.0.0.1 (moto's standalone server, ``s3_root`` in tests/conftest.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oirl.registry import ArtefactChecksumError, ChampionWatcher, ModelBundle, ModelRegistry, load_version, save_bundle
from oirl.registry.stores import MANIFEST, cache_name, checkout
from oirl.reward import PromptRewardModel
from oirl.select import SelectionPolicy
from oirl.settings import Settings
from oirl.store.engine import make_engine, make_session_factory
from oirl.store.migrate import upgrade
from oirl.tasks import TaskSpec, create_task

DIM = 8
PROBE = (np.ones((2, DIM), np.float32), np.linspace(-1, 1, 3 * DIM, dtype=np.float32).reshape(3, DIM))


@pytest.fixture
def factory(tmp_path):
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    create_task(factory, TaskSpec(name="a", prompts=["x", "y"]))
    yield factory
    engine.dispose()


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    q, p = rng.normal(size=(200, DIM)).astype(np.float32), rng.normal(size=(200, DIM)).astype(np.float32)
    y = (q[:, 0] * p[:, 0] > 0).astype(np.float32)
    return PromptRewardModel(params={"n_rounds": 5, "min_data_in_leaf": 2, "num_leaves": 4},
                             embedder={"name": "test", "revision": "r1", "dim": DIM}).fit(q, p, y)


@pytest.fixture
def bundle(model, tmp_path):
    made = iter(range(1000))

    def make():
        b = ModelBundle(model, SelectionPolicy("x", 0.5, 0.1, {}), "a", ["x", "y"], {"task": "a"}, {})
        return save_bundle(b, tmp_path / "bundles" / str(next(made)))

    return make


@pytest.fixture(params=["memory", "s3"])
def remote(request, tmp_path):
    """(store URL, storage options) of a remote store, fresh per test."""
    if request.param == "memory":
        import fsspec

        root = f"memory://oirl-{tmp_path.name}/models"
        yield root, {}
        fsspec.filesystem("memory").rm(root.removeprefix("memory://").split("/")[0], recursive=True)
    else:
        yield request.getfixturevalue("s3_root")


def replica(factory, remote, tmp_path, name: str) -> ModelRegistry:
    """A registry as one serving machine sees it: the shared store and database, its own local cache."""
    root, options = remote
    return ModelRegistry(factory, root, cache_dir=tmp_path / f"cache-{name}", storage_options=options)


def fs_of(reg: ModelRegistry):
    return reg.store.fs, reg.store.path


# ------------------------------------------------------------------ local
@pytest.mark.parametrize("form", ["path", "file_url"])
def test_local_store_keeps_the_atomic_rename(factory, bundle, tmp_path, form):
    root = tmp_path / "models"
    reg = ModelRegistry(factory, root if form == "path" else f"file://{root}")
    v = reg.register(bundle())
    assert reg.root == root and v.artefact_path == str(root / "1")  # a plain path, as rows always were
    assert sorted(p.name for p in root.iterdir()) == ["1"]  # no staging copy, no manifest: today's layout
    assert not (root / "1" / MANIFEST).exists()
    reg.verify(v.id)
    assert load_version(reg, v.id).model.score(*PROBE).shape == (2, 3)


def test_settings_take_a_path_or_a_url(monkeypatch, tmp_path):
    monkeypatch.setenv("OIRL_ARTEFACT_DIR", "s3://bucket/models/")
    monkeypatch.setenv("OIRL_ARTEFACT_STORAGE_OPTIONS", '{"endpoint_url": "http://127.0.0.1:9000"}')
    s = Settings(home=tmp_path)
    assert s.resolved_artefact_dir == "s3://bucket/models"  # a string: Path() would mangle the "//"
    assert s.artefact_storage_options == {"endpoint_url": "http://127.0.0.1:9000"}
    assert s.resolved_artefact_cache_dir == tmp_path / "cache" / "artefacts"
    monkeypatch.setenv("OIRL_ARTEFACT_DIR", f"file://{tmp_path}/m")
    assert Settings(home=tmp_path).resolved_artefact_dir == tmp_path / "m"


# ----------------------------------------------------------------- remote
def test_remote_register_promote_and_load_from_another_machine(factory, bundle, tmp_path, remote):
    writer, reader = replica(factory, remote, tmp_path, "w"), replica(factory, remote, tmp_path, "r")
    v = writer.register(bundle())
    assert v.artefact_path == f"{remote[0]}/1"
    fs, path = fs_of(writer)
    manifest = json.loads(fs.cat_file(f"{path}/1/{MANIFEST}"))
    assert manifest["sha256"] == v.artefact_sha256 and {f["path"] for f in manifest["files"]} >= {"metadata.json"}
    assert (writer.cache_dir / cache_name(1, v.artefact_sha256)).is_dir()  # the writer kept its staged copy
    assert writer.promote(v.id).version == 1  # promotion verifies: fetches and hashes the version
    loaded = load_version(reader, 1)
    assert np.array_equal(loaded.model.score(*PROBE), load_version(writer, 1).model.score(*PROBE))
    cached = reader.cache_dir / cache_name(1, v.artefact_sha256)
    assert sorted(p.name for p in reader.cache_dir.iterdir()) == [cached.name]  # no staging or download left
    assert load_version(reader, 1).info.artefact_sha256 == v.artefact_sha256  # reused: still verified


def test_two_replicas_serve_the_same_champion(factory, bundle, tmp_path, remote):
    writer = replica(factory, remote, tmp_path, "w")
    watchers = [ChampionWatcher(replica(factory, remote, tmp_path, n)) for n in ("r1", "r2")]
    writer.promote(writer.register(bundle()).id)
    assert all(w.refresh() for w in watchers)
    writer.promote(writer.register(bundle()).id, force=True)
    assert all(w.refresh() for w in watchers)
    served = [w.current("a") for w in watchers]
    assert [m.version for m in served] == [2, 2]
    assert np.array_equal(served[0].model.score(*PROBE), served[1].model.score(*PROBE))


def test_a_corrupted_remote_file_is_refused_and_the_old_champion_keeps_serving(factory, bundle, tmp_path, remote):
    writer = replica(factory, remote, tmp_path, "w")
    watcher = ChampionWatcher(replica(factory, remote, tmp_path, "r"))
    writer.promote(writer.register(bundle()).id)
    assert watcher.refresh() and watcher.current("a").version == 1
    v2 = writer.register(bundle())
    writer.promote(v2.id, force=True)  # verified while intact; the object rots afterwards
    fs, path = fs_of(writer)
    model_file = next(f for f in fs.find(f"{path}/2") if not f.endswith((MANIFEST, "metadata.json")))
    fs.pipe_file(model_file, fs.cat_file(model_file)[:-7] + b"garbage")
    assert not watcher.refresh()
    assert watcher.current("a").version == 1 and "does not match its manifest" in watcher.errors["a"]
    assert not [p for p in watcher.registry.cache_dir.iterdir() if p.name.startswith(("2-", ".download-"))]
    with pytest.raises(ArtefactChecksumError):
        replica(factory, remote, tmp_path, "fresh").verify(2)


def test_a_damaged_local_copy_is_fetched_again(factory, bundle, tmp_path, remote):
    reader = replica(factory, remote, tmp_path, "r")
    v = replica(factory, remote, tmp_path, "w").register(bundle())
    copy = reader.local_dir(v)
    (copy / "metadata.json").write_text("{}")
    assert reader.local_dir(v) == copy
    load_version(reader, v.id)  # the damaged copy was replaced by a verified one


def test_a_crash_between_upload_and_manifest_leaves_an_invisible_version_swept_later(
        factory, bundle, tmp_path, remote):
    writer = replica(factory, remote, tmp_path, "w")

    def crash(*args):
        raise RuntimeError("simulated crash after the upload, before the manifest")

    writer.store.write_manifest = crash  # fault injection on this instance only
    with pytest.raises(RuntimeError, match="simulated crash"):
        writer.register(bundle())
    del writer.store.write_manifest
    assert writer.list() == []  # the row rolled back: the version never existed
    fs, path = fs_of(writer)
    assert fs.find(f"{path}/1") and not fs.exists(f"{path}/1/{MANIFEST}")  # uploaded, never committed
    with pytest.raises(ArtefactChecksumError, match="no manifest"):
        checkout(f"{remote[0]}/1", "0" * 64, 1, tmp_path / "cache-x", remote[1])
    assert writer.store.sweep(3600) == 0  # too young: it could be an upload in progress

    # Leftovers never leak into the next version that takes the number.
    fs.pipe_file(f"{path}/1/leftover.bin", b"from the crashed upload")
    v = writer.register(bundle())
    assert v.id == 1 and not fs.exists(f"{path}/1/leftover.bin")
    load_version(replica(factory, remote, tmp_path, "r"), 1)

    # An interrupted upload of another number is removed once old; a published version never is.
    staged, _ = writer.store.stage(bundle())
    writer.store.upload(staged, 7)
    writer.store.discard(staged)
    assert writer.store.sweep(0) == 1 and not fs.exists(f"{path}/7")
    assert writer.store.sweep(0) == 0 and fs.exists(f"{path}/1/{MANIFEST}")
    writer.verify(1)


def test_an_existing_local_deployment_keeps_serving_after_moving_to_a_url(factory, bundle, tmp_path, remote):
    v1 = ModelRegistry(factory, tmp_path / "models").register(bundle())
    moved = replica(factory, remote, tmp_path, "r")
    assert load_version(moved, v1.id).info.artefact_path == str(tmp_path / "models" / "1")  # verified in place
    assert moved.register(bundle()).artefact_path == f"{remote[0]}/2"


def test_a_manifest_cannot_write_outside_the_cache(factory, bundle, tmp_path):
    reg = replica(factory, (f"memory://oirl-{tmp_path.name}-evil/models", {}), tmp_path, "w")
    v = reg.register(bundle())
    fs, path = fs_of(reg)
    manifest = json.loads(fs.cat_file(f"{path}/1/{MANIFEST}"))
    manifest["files"][0]["path"] = "../../escaped"
    fs.pipe_file(f"{path}/1/{MANIFEST}", json.dumps(manifest).encode())
    with pytest.raises(ArtefactChecksumError, match="unsafe path"):
        replica(factory, (reg.root, {}), tmp_path, "r").local_dir(v)
    assert not (tmp_path / "escaped").exists()
    fs.rm(path.rsplit("/", 1)[0], recursive=True)

