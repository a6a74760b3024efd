"""The thread plan: every runtime's threads from the cores and the workers, in one place."""

from __future__ import annotations

import pytest

from oirl.threads import ThreadPlan, cgroup_cpu_limit, configure_threads, current_plan, plan_threads


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


@pytest.mark.parametrize("files, cpus", [
    ({"cpu.max": "200000 100000\n"}, 2.0),  # cgroup v2, a pod limited to 2 CPUs
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "max 100000\n"}, None),  # v2 without a limit
    ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4.0),  # v1
    ({"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),  # no cgroup file system (not Linux, or not mounted)
])
def test_a_containers_cpu_limit_is_read_from_its_cgroup(tmp_path, files, cpus):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == cpus


def test_the_cpu_limit_caps_the_cores_the_plan_divides(monkeypatch):
    from oirl import threads

    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _: set(range(32)), raising=False)
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 1.5)
    assert threads.available_cores() == 2
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    assert threads.available_cores() == 32
