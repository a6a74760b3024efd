"""Model registry: atomic versions on disk, checksums, gated promotion, rollback, hot swap."""

from __future__ import annotations

import numpy as np
import pytest

from oirl.registry import (
    ArtefactChecksumError,
    ChampionWatcher,
    ModelRegistry,
    PromotionRefused,
    VersionNotFound,
    load_version,
)
from oirl.registry.registry import champion_stack
from oirl.reward import PromptRewardModel
from oirl.store.engine import make_engine, make_session_factory
from oirl.store.migrate import upgrade

DIM = 8
TINY = {"n_rounds": 5, "min_data_in_leaf": 2, "num_leaves": 4}


@pytest.fixture
def registry(tmp_path):
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    upgrade(url)
    return ModelRegistry(make_session_factory(make_engine(url)), tmp_path / "models")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(200, DIM)).astype(np.float32)
    p = rng.normal(size=(200, DIM)).astype(np.float32)
    y = (q[:, 0] * p[:, 0] > 0).astype(np.float32)
    model = PromptRewardModel(params=TINY, embedder={"name": "test", "revision": "r1", "dim": DIM}).fit(q, p, y)
    out = tmp_path_factory.mktemp("m") / "model"
    model.save(out, extra={"policy": {"default_prompt": "x", "default_train_accuracy": 0.5,
                                      "margin_threshold": 0.1, "validation": {}}})
    return out


def gate(accuracy, champion, champion_accuracy):
    return {"gate": {"accuracy": accuracy, "champion_version": champion, "champion_accuracy": champion_accuracy}}


def test_register_writes_numbered_immutable_versions(registry, model_dir):
    v1 = registry.register(model_dir, metrics={"a": 1})
    v2 = registry.register(model_dir, alias="challenger")
    assert (v1.id, v2.id) == (1, 2)
    assert (registry.root / "1" / "metadata.json").is_file()
    assert v1.artefact_sha256 == v2.artefact_sha256 and len(v1.artefact_sha256) == 64
    assert v1.embedder == "test" and v1.embedder_revision == "r1" and v1.backend == "lightgbm"
    assert registry.aliases() == {"challenger": 2}
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".")]  # no staging left behind
    loaded = load_version(registry, 1)
    assert loaded.model.score(np.ones((1, DIM)), np.ones((3, DIM))).shape == (1, 3)
    assert loaded.policy.margin_threshold == 0.1


def test_tampered_artefact_is_never_loaded_or_promoted(registry, model_dir):
    v = registry.register(model_dir)
    (registry.root / str(v.id) / "extra.txt").write_text("sneaky")
    with pytest.raises(ArtefactChecksumError):
        load_version(registry, v.id)
    with pytest.raises(ArtefactChecksumError):
        registry.promote(v.id)
    assert registry.alias("champion") is None


def test_orphan_directory_from_a_crash_is_moved_aside(registry, model_dir):
    registry.root.mkdir(parents=True)
    (registry.root / "1").mkdir()
    (registry.root / "1" / "half.bin").write_bytes(b"half")
    v = registry.register(model_dir)
    assert v.id == 1
    load_version(registry, 1)  # the real one, checksum ok
    assert any(p.name.startswith(".orphan-1-") for p in registry.root.iterdir())


def test_promotion_is_gated_on_the_same_split(registry, model_dir):
    v1 = registry.register(model_dir)
    assert registry.promote(v1.id).previous is None  # first champion: nothing to compare with
    worse = registry.register(model_dir, metrics=gate(0.5, v1.id, 0.6))
    better = registry.register(model_dir, metrics=gate(0.7, v1.id, 0.6))
    other_split = registry.register(model_dir, metrics=gate(0.9, 99, 0.1))
    with pytest.raises(PromotionRefused, match="worse"):
        registry.promote(worse.id)
    with pytest.raises(PromotionRefused, match="not evaluated against"):
        registry.promote(other_split.id)
    move = registry.promote(better.id)
    assert (move.version, move.previous) == (better.id, v1.id)
    assert registry.promote(worse.id, force=True).previous == better.id
    with pytest.raises(VersionNotFound):
        registry.promote(42)


def test_rollback_walks_back_through_history(registry, model_dir):
    ids = [registry.register(model_dir).id for _ in range(3)]
    for v in ids:
        registry.promote(v, force=True)
    assert registry.rollback().version == ids[1]
    assert registry.rollback().version == ids[0]
    with pytest.raises(PromotionRefused, match="no previous champion"):
        registry.rollback()
    registry.promote(ids[2], force=True)
    assert registry.rollback().version == ids[0]


def test_champion_stack_replays_pushes_and_pops():
    class Ev:
        def __init__(self, v, reason=""):
            self.version_id, self.reason = v, reason

    newest_first = [Ev(1, "rollback from v2"), Ev(2), Ev(1)]
    assert champion_stack(newest_first) == [1]


def test_watcher_hot_swaps_and_keeps_old_model_on_bad_version(registry, model_dir):
    v1, v2, v3 = (registry.register(model_dir).id for _ in range(3))
    swaps = []
    watcher = ChampionWatcher(registry, poll_seconds=0.05, on_swap=lambda m: swaps.append(m.version))
    assert watcher.refresh() is False and watcher.current is None
    registry.promote(v1)
    assert watcher.refresh() and watcher.current.version == v1
    registry.promote(v2, force=True)
    assert watcher.refresh() and watcher.current.version == v2
    # v3 is corrupted after promotion (disk fault): the watcher keeps serving v2.
    registry.promote(v3, force=True)
    (registry.root / str(v3) / "metadata.json").write_text("{}")
    assert watcher.refresh() is False
    assert watcher.current.version == v2 and "v3" in watcher.last_error
    assert swaps == [v1, v2]
