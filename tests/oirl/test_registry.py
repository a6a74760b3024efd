"""Model registry: atomic versions on disk, checksums, gated promotion, per-task rollback and hot swap."""

from __future__ import annotations

import numpy as np
import pytest

from oirl.registry import (
    ArtefactChecksumError,
    ChampionWatcher,
    ModelBundle,
    ModelRegistry,
    PromotionRefused,
    TaskNotFound,
    VersionNotFound,
    load_version,
    save_bundle,
)
from oirl.registry.registry import champion_stack
from oirl.reward import ArtefactError, PromptRewardModel
from oirl.select import SelectionPolicy
from oirl.store.engine import make_engine, make_session_factory
from oirl.store.migrate import upgrade
from oirl.tasks import TaskSpec, create_task

DIM = 8
TINY = {"n_rounds": 5, "min_data_in_leaf": 2, "num_leaves": 4}


@pytest.fixture
def registry(tmp_path):
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    for name in ("a", "b"):
        create_task(factory, TaskSpec(name=name, prompts=["x", "y"]))
    return ModelRegistry(factory, tmp_path / "models")


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(200, DIM)).astype(np.float32)
    p = rng.normal(size=(200, DIM)).astype(np.float32)
    y = (q[:, 0] * p[:, 0] > 0).astype(np.float32)
    return PromptRewardModel(params=TINY, embedder={"name": "test", "revision": "r1", "dim": DIM}).fit(q, p, y)


@pytest.fixture
def bundle(model, tmp_path):
    """bundle(task="a", gate=None) -> a saved model bundle directory."""
    made = iter(range(10_000))

    def make(task: str = "a", gate: dict | None = None):
        policy = SelectionPolicy("x", 0.5, 0.1, {})
        b = ModelBundle(model, policy, task, ["x", "y"], {"task": task}, {"gate": gate} if gate else {})
        return save_bundle(b, tmp_path / "bundles" / str(next(made)))

    return make


def gate(verdict, champion, value=0.6):
    return {"verdict": verdict, "champion_version": champion, "metric": "value", "challenger": value,
            "reason": f"{verdict} (test)"}


def test_register_writes_numbered_immutable_versions(registry, bundle):
    v1 = registry.register(bundle())
    v2 = registry.register(bundle(), alias="challenger")
    assert (v1.id, v2.id) == (1, 2) and v1.task == "a"
    assert (registry.root / "1" / "metadata.json").is_file()
    assert v1.artefact_sha256 == v2.artefact_sha256 and len(v1.artefact_sha256) == 64
    assert v1.embedder == "test" and v1.embedder_revision == "r1" and v1.backend == "lightgbm"
    assert registry.aliases() == {"a": {"challenger": 2}}
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".")]  # no staging left behind
    loaded = load_version(registry, 1)
    assert loaded.model.score(np.ones((1, DIM)), np.ones((3, DIM))).shape == (1, 3)
    assert loaded.policy.margin_threshold == 0.1 and loaded.task == "a" and loaded.bundle.prompts == ["x", "y"]


def test_register_refuses_a_plain_model_or_an_unknown_task(registry, model, bundle, tmp_path):
    model.save(tmp_path / "plain")
    with pytest.raises(ArtefactError, match="without a selection policy"):
        registry.register(tmp_path / "plain")
    with pytest.raises(TaskNotFound, match="'zzz' does not exist"):
        registry.register(bundle(task="zzz"))
    assert not [p for p in registry.root.iterdir()] if registry.root.exists() else True


def test_tampered_artefact_is_never_loaded_or_promoted(registry, bundle):
    v = registry.register(bundle())
    (registry.root / str(v.id) / "extra.txt").write_text("sneaky")
    with pytest.raises(ArtefactChecksumError):
        load_version(registry, v.id)
    with pytest.raises(ArtefactChecksumError):
        registry.promote(v.id)
    assert registry.alias("a", "champion") is None


def test_orphan_directory_from_a_crash_is_moved_aside(registry, bundle):
    registry.root.mkdir(parents=True)
    (registry.root / "1").mkdir()
    (registry.root / "1" / "half.bin").write_bytes(b"half")
    v = registry.register(bundle())
    assert v.id == 1
    load_version(registry, 1)  # the real one, checksum ok
    assert any(p.name.startswith(".orphan-1-") for p in registry.root.iterdir())


def test_promotion_is_gated_on_the_same_queries(registry, bundle):
    v1 = registry.register(bundle())
    assert registry.promote(v1.id).previous is None  # first champion: nothing to compare with
    worse = registry.register(bundle(gate=gate("worse", v1.id)))
    few = registry.register(bundle(gate=gate("too_few_queries", v1.id)))
    better = registry.register(bundle(gate=gate("pass", v1.id)))
    other = registry.register(bundle(gate=gate("pass", 99)))
    with pytest.raises(PromotionRefused, match="did not pass the gate.*worse"):
        registry.promote(worse.id)
    with pytest.raises(PromotionRefused, match="too_few_queries"):
        registry.promote(few.id)
    with pytest.raises(PromotionRefused, match="not judged against"):
        registry.promote(other.id)
    move = registry.promote(better.id)
    assert (move.task, move.version, move.previous) == ("a", better.id, v1.id)
    assert registry.promote(worse.id, force=True).previous == better.id
    with pytest.raises(VersionNotFound):
        registry.promote(42)


def test_tasks_have_their_own_champions(registry, bundle):
    a1, b1, a2 = registry.register(bundle("a")).id, registry.register(bundle("b")).id, registry.register(bundle("a")).id
    registry.promote(a1)
    registry.promote(b1)
    registry.promote(a2, force=True)
    assert registry.champions() == {"a": a2, "b": b1}
    assert registry.rollback("a").version == a1
    assert registry.champions() == {"a": a1, "b": b1}  # b untouched
    with pytest.raises(PromotionRefused, match="'b' has no previous champion"):
        registry.rollback("b")


def test_rollback_walks_back_through_history(registry, bundle):
    ids = [registry.register(bundle()).id for _ in range(3)]
    for v in ids:
        registry.promote(v, force=True, reason="rollback-looking reason")  # must not read as a rollback
    assert registry.rollback("a").version == ids[1]
    assert registry.rollback("a").version == ids[0]
    with pytest.raises(PromotionRefused, match="no previous champion"):
        registry.rollback("a")
    registry.promote(ids[2], force=True)
    assert registry.rollback("a").version == ids[0]


def test_rollback_onto_a_corrupted_version_is_refused(registry, bundle):
    v1, v2 = (registry.register(bundle()).id for _ in range(2))
    registry.promote(v1)
    registry.promote(v2, force=True)
    (registry.root / str(v1) / "metadata.json").write_text("{}")
    with pytest.raises(ArtefactChecksumError, match="refusing to load"):
        registry.rollback("a")
    assert registry.alias("a", "champion") == v2  # nothing moved
    (registry.root / str(v1)).rename(registry.root / "gone")
    with pytest.raises(ArtefactChecksumError, match="missing"):
        registry.rollback("a")
    assert [h["version"] for h in registry.history("a")] == [v2, v1]


def test_staging_and_training_leftovers_are_swept_when_old(tmp_path):
    import os
    import time

    from oirl.registry.artefacts import sweep_staging

    old, fresh, kept = tmp_path / ".staging-old", tmp_path / ".staging-new", tmp_path / "3"
    for d in (old, fresh, kept):
        d.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    os.utime(kept, (time.time() - 7200, time.time() - 7200))
    assert sweep_staging(tmp_path, 3600) == 1
    assert not old.exists() and fresh.exists() and kept.exists()  # a registration may be using the fresh one
    train = tmp_path / "oirl-train-x"
    train.mkdir()
    os.utime(train, (time.time() - 100, time.time() - 100))
    assert sweep_staging(tmp_path, 50, prefix="oirl-train-") == 1 and not train.exists()


def test_champion_stack_replays_pushes_and_pops():
    class Ev:
        def __init__(self, v, reason=""):
            self.version_id, self.reason = v, reason

    newest_first = [Ev(1, "rollback from v2"), Ev(2), Ev(1)]
    assert champion_stack(newest_first) == [1]


def test_watcher_hot_swaps_and_keeps_old_model_on_bad_version(registry, bundle):
    v1, v2, v3 = (registry.register(bundle()).id for _ in range(3))
    b1 = registry.register(bundle("b")).id
    swaps = []
    watcher = ChampionWatcher(registry, poll_seconds=0.05, on_swap=lambda m: swaps.append(m.version))
    assert watcher.refresh() is False and watcher.current("a") is None
    registry.promote(v1)
    registry.promote(b1)
    assert watcher.refresh() and watcher.current("a").version == v1 and watcher.current("b").version == b1
    registry.promote(v2, force=True)
    assert watcher.refresh() and watcher.current("a").version == v2
    # v3 is corrupted after promotion (disk fault): the watcher keeps serving v2.
    registry.promote(v3, force=True)
    (registry.root / str(v3) / "metadata.json").write_text("{}")
    assert watcher.refresh() is False
    assert watcher.current("a").version == v2 and "v3" in watcher.last_error
    assert watcher.current("b").version == b1
    assert sorted(swaps) == sorted([v1, b1, v2])
    registry.rollback("a")  # back to v2, the version it still serves: the error is over
    assert watcher.refresh() is False and watcher.errors == {} and watcher.current("a").version == v2


def test_a_version_saved_before_bundles_still_loads_for_its_task(model, tmp_path):
    """Stores migrated from before tasks hold artefacts with the policy under `policy`."""
    from oirl.registry import load_bundle

    policy = {"default_prompt": "x", "default_train_accuracy": 0.5, "margin_threshold": 0.1, "validation": {}}
    model.save(tmp_path / "legacy", extra={"policy": policy})
    bundle = load_bundle(tmp_path / "legacy", task_hint="a")
    assert bundle.task == "a" and bundle.policy.default_prompt == "x" and bundle.prompts == ["x"]
    with pytest.raises(ArtefactError, match="without a selection policy"):
        load_bundle(tmp_path / "legacy")


def test_watcher_start_and_stop_race_safely(registry):
    """The service starts the watcher on its startup thread and may stop it at any moment."""
    import threading

    for _ in range(50):
        watcher = ChampionWatcher(registry, poll_seconds=0.01)
        starter = threading.Thread(target=watcher.start)
        starter.start()
        watcher.stop()  # never "cannot join thread before it is started"
        starter.join()
        assert watcher._thread is None or not watcher._thread.is_alive()
    stopped = ChampionWatcher(registry)
    stopped.stop()
    stopped.start()  # a stopped watcher stays stopped
    assert stopped._thread is None


def test_a_version_whose_job_died_after_registering_it_is_not_in_use(store, bundle, tmp_path):
    """kill -9 right after the version row committed (job at progress 1.0): the job is reaped as failed,
    so its version must not stay the challenger nor promote without force (SQLite and PostgreSQL)."""
    from datetime import timedelta

    from oirl.store import jobs_repo
    from oirl.store.engine import transaction

    create_task(store, TaskSpec(name="a", prompts=["x", "y"]))
    registry = ModelRegistry(store, tmp_path / "models")
    first = registry.register(bundle())
    registry.promote(first.id)
    with transaction(store) as s:
        job = jobs_repo.create_job(s, "retrain", {})
        jobs_repo.claim_next(s, "worker-1")
    made = registry.register(bundle(gate=gate("pass", first.id)), job_id=job.id, alias="challenger")
    assert registry.alias("a", "challenger") == made.id
    # ... the worker dies here; another one reaps the job once its heartbeat is stale
    with transaction(store) as s:
        assert jobs_repo.reap_stale(s, timedelta(seconds=-1)) == 1
    assert registry.alias("a", "challenger") is None
    with pytest.raises(PromotionRefused, match=f"registered by job {job.id}, which then failed"):
        registry.promote(made.id)
    assert registry.alias("a", "champion") == first.id
    assert registry.promote(made.id, force=True).version == made.id  # an operator may still take it
