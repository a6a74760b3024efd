"""The thread plan: every runtime's threads from the cores and the workers, in one place."""

from __future__ import annotations

from oirl.threads import ThreadPlan, configure_threads, current_plan, plan_threads


def test_each_worker_gets_its_share_of_the_cores_and_at_least_one():
    assert plan_threads(workers=1, cores=2) == ThreadPlan(encoder=1, torch=1, lightgbm=2)
    assert plan_threads(workers=2, cores=2) == ThreadPlan(encoder=1, torch=1, lightgbm=1)
    assert plan_threads(workers=4, cores=2) == ThreadPlan(encoder=1, torch=1, lightgbm=1)
    assert plan_threads(workers=2, cores=16) == ThreadPlan(encoder=4, torch=4, lightgbm=4)


def test_configure_sets_the_plan_that_lightgbm_and_the_encoder_read(monkeypatch, tmp_path):
    from oirl import threads
    from oirl.embed import make_embedder
    from oirl.reward.backends import default_threads
    from oirl.settings import Settings

    monkeypatch.setattr(threads, "_plan", None)  # restored after the test
    plan = configure_threads(workers=1, cores=4)
    assert current_plan() == plan and default_threads() == plan.lightgbm == 4
    emb = make_embedder(Settings(home=tmp_path, encoder="onnx-int8"), cache=False)
    assert emb.threads == plan.encoder == 2
