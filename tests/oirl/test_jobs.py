"""Jobs: claimed exactly once, heartbeats, stale reaping, and the retrain/evaluation handlers."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from oirl.embed import make_embedder
from oirl.jobs import EvaluationParams, JobError, JobRunner, RetrainParams, retrain, run_evaluation
from oirl.registry import ModelRegistry, load_version
from oirl.store import jobs_repo
from oirl.store.engine import transaction
from oirl.store.logs import import_observations

TINY = {"n_rounds": 20, "min_data_in_leaf": 2, "num_leaves": 4, "early_stopping_rounds": 5}
GOOD_FOR_SUMS, GOOD_FOR_STORIES = "The answer is:", "Let's think step by step: "


def synthetic_logs(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Two kinds of question; each prompt is right on one kind (a learnable, query-dependent signal)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        sums = i % 2 == 0
        q = (f"compute {i} plus {i + 7} sum total" if sums
             else f"tom has {i} apples and gives some to friends story how many left")
        for prompt, good in ((GOOD_FOR_SUMS, sums), (GOOD_FOR_STORIES, not sums)):
            correct = bool(good) if rng.random() > 0.1 else not good
            rows.append({"task": "synth", "external_key": str(i), "query": q, "prompt": prompt,
                         "reward": float(correct), "llm": "toy", "split": "train" if i < n * 0.8 else "test"})
    return pd.DataFrame(rows)


def production_logs(n: int = 160, seed: int = 1, propensity: bool = True) -> pd.DataFrame:
    """Production-shaped: each question tried with ONE prompt drawn uniformly (propensity 0.5),
    sometimes twice with different outcomes."""
    import numpy as np

    full = synthetic_logs(n, seed).assign(split="train")
    rng = np.random.default_rng(seed)
    picks = full.groupby("external_key", sort=False).sample(1, random_state=seed)
    repeats = picks.sample(frac=0.3, random_state=seed).assign(reward=lambda d: 1.0 - d.reward * rng.integers(0, 2))
    out = pd.concat([picks, repeats], ignore_index=True)
    return out.assign(propensity=0.5) if propensity else out


@pytest.fixture
def embedder():
    return make_embedder("hashing-bow-64", cache=False)


def test_each_job_is_claimed_exactly_once_by_concurrent_workers(store):
    with transaction(store) as s:
        ids = {jobs_repo.create_job(s, "noop").id for _ in range(12)}
    ran: list[str] = []
    lock = threading.Lock()

    def handler(ctx):
        with lock:
            ran.append(ctx.job_id)
        return {"ok": True}

    runners = [JobRunner(store, {"noop": handler}, worker_id=f"w{i}") for i in range(4)]

    def drain(r):
        while r.run_once():
            pass

    threads = [threading.Thread(target=drain, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ran) == sorted(ids)  # every job once, none twice
    with store() as s:
        assert jobs_repo.counts(s) == {("noop", "succeeded"): 12}


def test_failures_are_recorded_with_their_reason(store):
    def boom(ctx):
        raise JobError("no training logs for dataset 'x'")

    def crash(ctx):
        raise ZeroDivisionError("oops")

    runner = JobRunner(store, {"boom": boom, "crash": crash})
    a, b = runner.submit("boom"), runner.submit("crash")
    runner.run_once(), runner.run_once()
    with store() as s:
        ja, jb = jobs_repo.get_job(s, a), jobs_repo.get_job(s, b)
    assert (ja.status, ja.error) == ("failed", "no training logs for dataset 'x'")
    assert jb.status == "failed" and jb.error.startswith("ZeroDivisionError: oops")


def test_a_failed_job_tells_its_client_no_server_path_or_traceback(store, tmp_path):
    secret = tmp_path / "models" / "7" / "model.txt"

    def crash(ctx):
        open(secret)  # FileNotFoundError naming a server path

    runner = JobRunner(store, {"crash": crash})
    job_id = runner.submit("crash")
    runner.run_once()
    with store() as s:
        error = jobs_repo.get_job(s, job_id).error
    assert error.startswith("FileNotFoundError") and "model.txt" in error
    assert str(tmp_path) not in error and "Traceback" not in error


def test_a_hanging_job_times_out_and_the_runner_goes_on(store):
    release = threading.Event()
    reached_end = []

    def hang(ctx):
        release.wait(30)  # hung: the heartbeat thread keeps the job looking alive
        ctx.progress(0.9)  # the abandoned handler learns here that the job is not its own any more
        reached_end.append(True)
        return {"published": True}

    runner = JobRunner(store, {"hang": hang, "quick": lambda ctx: {"ok": 1}}, heartbeat_seconds=0.05,
                       timeout_seconds=0.5)
    hung, quick = runner.submit("hang"), runner.submit("quick")
    t0 = time.monotonic()
    assert runner.run_once() == hung
    assert time.monotonic() - t0 < 5
    with store() as s:
        job = jobs_repo.get_job(s, hung)
        assert job.status == "failed" and "timed out after 0.5 s" in job.error
    assert runner.run_once() == quick  # the next job is not stuck behind the hung one
    release.set()
    time.sleep(0.3)
    assert not reached_end
    with store() as s:
        assert jobs_repo.get_job(s, hung).status == "failed" and jobs_repo.get_job(s, quick).status == "succeeded"


def test_stale_running_job_is_reaped_and_cannot_be_resurrected(store):
    with transaction(store) as s:
        job_id = jobs_repo.create_job(s, "retrain").id
        assert jobs_repo.claim_next(s, "dead-worker").id == job_id
    with transaction(store) as s:
        assert jobs_repo.reap_stale(s, timedelta(seconds=60)) == 0  # fresh heartbeat
        assert jobs_repo.reap_stale(s, timedelta(seconds=-1)) == 1  # "a minute later"
    with transaction(store) as s:
        job = jobs_repo.get_job(s, job_id)
        assert job.status == "failed" and "heartbeat" in job.error
        assert not jobs_repo.heartbeat(s, job_id, "dead-worker", 0.5)  # the old worker is told it lost it
        assert not jobs_repo.finish(s, job_id, "dead-worker", result={"version": 9})
    with store() as s:
        assert jobs_repo.get_job(s, job_id).status == "failed"


def test_background_loop_runs_submitted_jobs_and_heartbeats(store):
    done = threading.Event()
    beats = []

    def slow(ctx):
        ctx.progress(0.5)
        beats.append(ctx.job_id)
        done.wait(1.0)
        return {"n": 1}

    runner = JobRunner(store, {"slow": slow}, heartbeat_seconds=0.05, poll_seconds=0.05)
    runner.start()
    try:
        job_id = runner.submit("slow")
        for _ in range(100):
            with store() as s:
                job = jobs_repo.get_job(s, job_id)
            if job.status == "succeeded":
                break
            threading.Event().wait(0.05)
    finally:
        done.set()
        runner.stop()
    assert job.status == "succeeded" and job.result == {"n": 1} and job.progress == 1.0
    assert job.heartbeat_at is not None and job.started_at is not None


def test_retrain_registers_a_challenger_judged_against_the_champion(store, embedder, tmp_path):
    with transaction(store) as s:
        import_observations(s, synthetic_logs(), source="test")
    registry = ModelRegistry(store, tmp_path / "models")
    p = RetrainParams(task="synth", params=TINY, holdout_fraction=0.25)
    first, m1 = retrain(store, registry, embedder, p, min_gate_queries=5)
    assert first.aliases == ["challenger"] and m1["gate"]["verdict"] == "no_champion"
    assert m1["gate"]["method"] == "full information" and m1["gate"]["challenger"] > 0.7  # learnable
    registry.promote(first.id)
    second, m2 = retrain(store, registry, embedder, p, champion=load_version(registry, first.id), min_gate_queries=5)
    gate = m2["gate"]
    assert gate["champion_version"] == first.id and gate["champion"] == pytest.approx(gate["challenger"])
    assert gate["verdict"] == "pass" and gate["ci95"][0] <= 0 <= gate["ci95"][1]
    registry.promote(second.id)  # same data and seed: not worse, so the gate lets it through
    assert registry.alias("synth", "champion") == second.id
    # Held-out questions follow a fixed hash rule: none of them was trained on.
    assert second.data_snapshot["n_train_queries"] < 96 and second.data_snapshot["holdout"]["fraction"] == 0.25
    third, m3 = retrain(store, registry, embedder, p, champion=load_version(registry, second.id),
                        min_gate_queries=10_000)
    assert m3["gate"]["verdict"] == "too_few_queries"


def test_too_few_questions_to_train_is_an_error_naming_the_minimum(store, embedder, tmp_path):
    with transaction(store) as s:
        import_observations(s, synthetic_logs(n=12), source="test")
    with pytest.raises(JobError, match=r"training needs at least 20: log more observations"):
        retrain(store, ModelRegistry(store, tmp_path / "models"), embedder, RetrainParams(task="synth", params=TINY))


def test_the_promotion_hint_follows_the_registry_rule(store, embedder, tmp_path):
    from oirl.cli.model import next_step

    with transaction(store) as s:
        import_observations(s, synthetic_logs(), source="test")
    registry = ModelRegistry(store, tmp_path / "models")
    p = RetrainParams(task="synth", params=TINY, holdout_fraction=0.25)
    first, m1 = retrain(store, registry, embedder, p, min_gate_queries=5)
    assert next_step(m1, first.id, None) == f"promote with: oirl models promote {first.id}"
    registry.promote(first.id)
    second, m2 = retrain(store, registry, embedder, p, champion=load_version(registry, first.id),
                         min_gate_queries=10_000)
    hint = next_step(m2, second.id, first.id)
    assert hint.startswith("not promotable yet") and "fewer than the minimum 10000" in hint
    assert hint.endswith(f"oirl models promote {second.id} --force")


def test_a_larger_hold_out_is_honoured_for_training_and_the_gate_says_what_it_judged_on(store, embedder, tmp_path):
    with transaction(store) as s:
        import_observations(s, synthetic_logs(), source="test")
    registry = ModelRegistry(store, tmp_path / "models")
    first, _ = retrain(store, registry, embedder, RetrainParams(task="synth", params=TINY, holdout_fraction=0.25),
                       min_gate_queries=5)
    registry.promote(first.id)
    wider = RetrainParams(task="synth", params=TINY, holdout_fraction=0.4)
    second, m2 = retrain(store, registry, embedder, wider, champion=load_version(registry, first.id),
                         min_gate_queries=5)
    assert second.data_snapshot["holdout"]["fraction"] == 0.4  # trained without 40% of the questions
    assert m2["gate"]["held_out_fraction"] == 0.25
    assert m2["gate"]["held_out_note"] == ("trained with 40% of questions held out, judged on the 25% the champion "
                                           "also never trained on")


def test_heads_backend_trains_through_retrain_and_loads_back(store, embedder, tmp_path):
    with transaction(store) as s:
        import_observations(s, production_logs(), source="prod")
    registry = ModelRegistry(store, tmp_path / "models")
    info, metrics = retrain(store, registry, embedder, RetrainParams(task="synth", backend="heads"), min_gate_queries=5)
    loaded = load_version(registry, info.id)
    q, p = embedder.encode(["compute 3 plus 10 sum total"]), embedder.encode([GOOD_FOR_SUMS, GOOD_FOR_STORIES])
    assert loaded.bundle.model.backend == "heads" and loaded.bundle.model.score(q, p).shape == (1, 2)
    assert metrics["gate"]["method"] == "DR"


def test_retrain_on_production_shaped_logs_judges_and_calibrates_by_dr(store, embedder, tmp_path):
    with transaction(store) as s:
        import_observations(s, production_logs(), source="prod")
    registry = ModelRegistry(store, tmp_path / "models")
    p = RetrainParams(task="synth", params=TINY, holdout_fraction=0.3, calibration_folds=5)
    first, m1 = retrain(store, registry, embedder, p, min_gate_queries=5)
    assert m1["gate"]["metric"] == "value" and m1["gate"]["method"] == "DR"
    # no full-information validation query: τ comes from the observations' propensities, on out-of-fold
    # scores of every training question; the model (each question suits one prompt) earns trust
    n_train = first.data_snapshot["n_train_queries"]
    assert m1["validation"]["method"].startswith("dr") and m1["validation"]["n_queries"] == n_train
    assert m1["validation"]["share_trusting_model"] > 0 and m1["validation"]["gain_lower_bound"] > 0
    tau = load_version(registry, first.id).policy.margin_threshold
    assert (tau == float("inf")) == (m1["validation"]["share_trusting_model"] == 0)
    # on the 10% validation split alone, a tenth of the questions: a looser bound on the same gain
    split_only = RetrainParams(task="synth", params=TINY, holdout_fraction=0.3, calibration_folds=0)
    _, m0 = retrain(store, registry, embedder, split_only, min_gate_queries=5)
    assert 0 < m0["validation"]["n_queries"] < n_train / 5
    assert m0["validation"]["gain_lower_bound"] < m1["validation"]["gain_lower_bound"]
    weighted, mw = retrain(store, registry, embedder, RetrainParams(task="synth", params=TINY, holdout_fraction=0.3,
                                                                     propensity_clip=0.05), min_gate_queries=5)
    assert mw["gate"]["method"] == "DR"  # uniform logging: weights are all 1, the same model
    assert mw["validation_log_loss"] == pytest.approx(m1["validation_log_loss"])
    registry.promote(first.id)
    _, m2 = retrain(store, registry, embedder, p, champion=load_version(registry, first.id), min_gate_queries=5)
    assert m2["gate"]["verdict"] == "pass" and m2["gate"]["n_queries"] >= 5
    # the first champion won with nothing to beat: provisional, so the point estimate decides
    assert m2["gate"]["champion_provisional"] and m2["gate"]["provisional"] == (not m2["gate"]["significantly_better"])
    # a champion that always serves the other prompt, against a challenger that never trusts its model: two
    # constant policies of about equal value (each prompt is right on half the questions), so the DR
    # difference is small and uncertain
    other = load_version(registry, first.id)
    policy = other.bundle.policy
    policy.default_prompt = next(t for t in (GOOD_FOR_SUMS, GOOD_FOR_STORIES) if t != policy.default_prompt)
    policy.margin_threshold = float("inf")
    gates = {}
    for standing, metrics in (("provisional", {"gate": {"verdict": "no_champion"}}),
                              ("established", {"gate": {"verdict": "pass"}})):
        other.bundle.metrics = metrics
        gates[standing] = [retrain(store, registry, embedder, split_only, champion=other, min_gate_queries=5,
                                   min_lower_bound=b)[1]["gate"] for b in (0.0, -1.0)]
    (strict, relaxed), (lenient, _) = gates["established"], gates["provisional"]
    # an established champion: a strict setting refuses, a relaxed one lets the point estimate decide
    assert strict["ci95"][0] < 0 < strict["ci95"][1] and strict["verdict"] == "worse"
    assert relaxed["verdict"] == ("pass" if relaxed["difference"] >= 0 else "worse")
    # a provisional champion gets no benefit of the doubt, whatever the setting; the winner stays provisional
    assert lenient["difference"] == pytest.approx(strict["difference"])
    assert lenient["verdict"] == ("pass" if lenient["difference"] >= 0 else "worse") and lenient["provisional"]


def test_a_fresh_gate_judges_only_what_was_logged_after_the_champion(store, embedder, tmp_path):
    from oirl.jobs.retrain import holdout_mask

    with transaction(store) as s:
        import_observations(s, production_logs(), source="prod")
    registry = ModelRegistry(store, tmp_path / "models")
    fresh = RetrainParams(task="synth", params=TINY, holdout_fraction=0.3, gate_decisions="fresh")
    first, _ = retrain(store, registry, embedder, fresh, min_gate_queries=5)
    registry.promote(first.id)
    champion = load_version(registry, first.id)
    # nothing logged since the champion was trained: too few fresh questions, so every held-out observation counts
    _, stale = retrain(store, registry, embedder, fresh, champion=champion, min_gate_queries=5)
    assert stale["gate"]["held_out_since_observation"] is None and stale["gate"]["gate_decisions"] == "fresh"
    later = production_logs(seed=2).assign(observation_id=lambda d: [f"late-{i}" for i in range(len(d))])
    with transaction(store) as s:
        import_observations(s, later, source="prod-late")
    _, m = retrain(store, registry, embedder, fresh, champion=champion, min_gate_queries=5)
    gate = m["gate"]
    assert gate["held_out_since_observation"] == champion.bundle.data_scope["max_observation_id"]
    assert gate["n_held_out_observations"] == holdout_mask("synth", later["query"], 0.3).sum()  # the later batch's
    assert gate["verdict"] in ("pass", "worse") and gate["method"] == "DR"
    # the default judges on both batches
    everything = RetrainParams(task="synth", params=TINY, holdout_fraction=0.3)
    _, m_all = retrain(store, registry, embedder, everything, champion=champion, min_gate_queries=5)
    assert m_all["gate"]["held_out_since_observation"] is None
    assert m_all["gate"]["n_held_out_observations"] == stale["gate"]["n_held_out_observations"] + gate[
        "n_held_out_observations"]
    # asking for more fresh questions than there are falls back to all of them, and says so by the missing cut-off
    _, m_few = retrain(store, registry, embedder, fresh, champion=champion, min_gate_queries=10_000)
    assert m_few["gate"]["held_out_since_observation"] is None and m_few["gate"]["verdict"] == "too_few_queries"


def test_gate_verdicts():
    from oirl.evaluate.gate import verdict

    base = {"n_queries": 200, "metric": "value", "challenger": 0.52, "champion": 0.50, "not_worse": True,
            "ci95": [-0.03, 0.07], "method": "DR"}
    assert verdict(base, True, 100, -0.02)["verdict"] == "worse"  # lower bound -0.03 < -0.02
    assert "OIRL_GATE_MIN_LOWER_BOUND" in verdict(base, True, 100, -0.02)["reason"]
    assert verdict(base, True, 100, -0.05)["verdict"] == "pass"
    assert verdict(base | {"method": "full information"}, True, 100, -0.02)["verdict"] == "pass"
    assert verdict(base | {"not_worse": False}, True, 100, -1)["verdict"] == "worse"
    assert verdict(base, True, 500, -1)["verdict"] == "too_few_queries"
    assert verdict(base, False, 100, -1)["verdict"] == "no_champion"
    # a provisional champion: the point estimate decides, and a winner without a positive bound stays provisional
    lenient = verdict(base, True, 100, -0.02, champion_provisional=True)
    assert lenient["verdict"] == "pass" and lenient["provisional"] and "provisional" in lenient["reason"]
    assert verdict(base | {"not_worse": False}, True, 100, -0.02, champion_provisional=True)["verdict"] == "worse"
    assert verdict(base, True, 500, -0.02, champion_provisional=True)["verdict"] == "too_few_queries"
    significant = verdict(base | {"ci95": [0.01, 0.05], "significantly_better": True}, True, 100, -0.02,
                          champion_provisional=True)
    assert significant["verdict"] == "pass" and not significant["provisional"]
    assert not verdict(base, True, 100, -0.05)["provisional"]  # past an established champion: established


@given(lower=st.floats(-0.5, 0.5), width=st.floats(0, 0.5), n=st.integers(0, 400),
       method=st.sampled_from(["DR", "full information", "full information + DR"]),
       min_lower_bound=st.floats(-0.2, 0.0))
def test_a_provisional_champion_is_never_harder_to_replace(lower, width, n, method, min_lower_bound):
    from oirl.evaluate.gate import verdict

    gate = {"n_queries": n, "metric": "value", "challenger": 0.5 + lower + width / 2, "champion": 0.5,
            "not_worse": lower + width / 2 >= 0, "ci95": [lower, lower + width], "method": method,
            "significantly_better": lower > 0}
    established = verdict(gate, True, 100, min_lower_bound)
    provisional = verdict(gate, True, 100, min_lower_bound, champion_provisional=True)
    assert established["verdict"] != "pass" or provisional["verdict"] == "pass"
    # standing is earned, never inherited: past a provisional champion only with a lower bound above zero
    assert provisional["provisional"] == (provisional["verdict"] != "pass" or lower <= 0)


def test_significantly_better_follows_the_metrics_direction():
    import numpy as np

    from oirl.evaluate.gate import compare

    rng = np.random.default_rng(0)
    theirs = rng.uniform(0.3, 0.7, 300)
    higher = compare(theirs + 0.05, theirs, higher_is_better=True)  # a value: higher is better
    lower = compare(theirs - 0.05, theirs, higher_is_better=False)  # a log loss: lower is better
    assert higher["significantly_better"] and lower["significantly_better"]
    assert not compare(theirs - 0.05, theirs, higher_is_better=True)["significantly_better"]
    assert not compare(theirs + rng.normal(0, 0.2, 300), theirs, higher_is_better=True)["significantly_better"]


def test_which_champions_are_provisional():
    from oirl.evaluate.gate import is_provisional

    assert is_provisional({}) and is_provisional({"gate": {"verdict": "no_champion"}})
    assert is_provisional({"gate": {"verdict": "worse"}})  # promoted by force
    assert is_provisional({"gate": {"verdict": "pass", "provisional": True}})
    assert not is_provisional({"gate": {"verdict": "pass"}})  # recorded before the distinction: it passed the gate
    assert not is_provisional({"gate": {"verdict": "pass", "provisional": False}})


def test_partial_logs_without_propensities_fall_back_to_log_loss(store, embedder, tmp_path):
    with transaction(store) as s:
        import_observations(s, production_logs(propensity=False), source="prod")
    registry = ModelRegistry(store, tmp_path / "models")
    _, m = retrain(store, registry, embedder, RetrainParams(task="synth", params=TINY), min_gate_queries=5)
    assert m["gate"]["metric"] == "log_loss" and "log loss instead" in m["gate"]["method"]


def test_a_challenger_on_one_llms_slice_is_judged_on_the_champions_scope(store, embedder, tmp_path):
    logs = synthetic_logs()
    other = logs.assign(llm="other", external_key=logs.external_key + "-o")
    with transaction(store) as s:
        import_observations(s, pd.concat([logs, other]), source="test")
    registry = ModelRegistry(store, tmp_path / "models")
    first, _ = retrain(store, registry, embedder, RetrainParams(task="synth", params=TINY), min_gate_queries=5)
    registry.promote(first.id)
    sliced, m = retrain(store, registry, embedder, RetrainParams(task="synth", llm="toy", params=TINY),
                        champion=load_version(registry, first.id), min_gate_queries=5)
    assert m["gate"]["held_out_llms"] == "all" and m["gate"]["verdict"] in ("narrower_scope", "worse")
    with pytest.raises(Exception, match="did not pass the gate"):
        registry.promote(sliced.id)


def test_retrain_without_logs_fails_cleanly(store, embedder, tmp_path):
    with pytest.raises(JobError, match="task 'nope' does not exist"):
        retrain(store, ModelRegistry(store, tmp_path), embedder, RetrainParams(task="nope"))


def test_evaluation_returns_report_and_plot(store, embedder):
    with transaction(store) as s:
        import_observations(s, synthetic_logs(), source="test")
    from oirl.jobs.data import store_logs

    prompts = sorted(store_logs(store)["prompt_index"].unique().tolist())
    assert prompts == [0, 1]  # benchmark prompt texts keep their benchmark indices
    out = run_evaluation(store, embedder, EvaluationParams(task="synth", protocol="paper", params=TINY, n_boot=100))
    report = out["report"]
    assert report["information"] == "full" and report["methods"]["prompt_oirl"]["accuracy"] is not None
    assert report["k"] == 2  # not a benchmark task: every logged prompt trains
    assert report["repeat_headroom"]["note"].startswith("no query was tried more than once")
    import base64

    assert base64.b64decode(out["plot_png_base64"]).startswith(b"\x89PNG")


def test_evaluation_on_partial_logs_says_what_it_cannot_estimate(store, embedder):
    with transaction(store) as s:
        import_observations(s, production_logs(), source="prod")
    out = run_evaluation(store, embedder, EvaluationParams(task="synth", params=TINY, n_boot=100))
    report = out["report"]
    assert report["information"] == "partial" and report["methods"] == {}
    assert "cannot be read off the logs" in report["unavailable"]
    loss = report["held_out_log_loss"]
    assert loss["n_observations"] > 0 and 0 < loss["reward_model"] < 2 and 0 < loss["prompt_base_rate"] < 2
    headroom = report["repeat_headroom"]  # 30% of the questions were tried twice, each try with its propensity
    assert headroom["n_texts"] > 10 and headroom["ci95"][0] <= headroom["gain"] <= headroom["ci95"][1]
    with pytest.raises(JobError, match="paper protocol needs logs marked split=test"):
        run_evaluation(store, embedder, EvaluationParams(task="synth", protocol="paper", params=TINY))
