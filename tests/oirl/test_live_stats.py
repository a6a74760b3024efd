"""Live serving figures from counter snapshots."""

from __future__ import annotations

import math

import pytest

from oirl.live_stats import LiveWindow, Snapshot, histogram_quantile, summarise

INF = math.inf


def test_histogram_quantile_interpolates_within_the_bucket():
    buckets = ((0.01, 0.0), (0.02, 50.0), (0.05, 100.0), (INF, 100.0))
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.02)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.015)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.02 + 0.03 * 49 / 50)
    assert histogram_quantile(0.5, ((0.1, 0.0), (INF, 0.0))) is None
    assert histogram_quantile(0.99, ((0.1, 1.0), (INF, 10.0))) == 0.1  # in +inf: the largest finite bound


def test_summarise_gives_rates_and_shares_of_the_window_only():
    old = Snapshot(10.0, {"model": 100, "fallback": 20}, {"hit": 30, "miss": 90}, ((0.01, 50), (INF, 120)))
    new = Snapshot(20.0, {"model": 106, "fallback": 22, "explored": 2}, {"hit": 35, "miss": 95},
                   ((0.01, 58), (INF, 130)))
    s = summarise(old, new)
    assert s["selections"] == 10 and s["selections_per_second"] == pytest.approx(1.0)
    assert s["fallback_share"] == pytest.approx(0.2) and s["exploration_share"] == pytest.approx(0.2)
    assert s["cache_hit_rate"] == pytest.approx(0.5)
    assert s["latency_ms"]["p50"] == pytest.approx(1000 * 0.01 * 5 / 8)


def test_nothing_happened_is_none_not_zero_and_a_restart_counts_from_zero():
    quiet = summarise(Snapshot(0.0, {"model": 5}), Snapshot(4.0, {"model": 5}))
    assert quiet["selections"] == 0 and quiet["fallback_share"] is None and quiet["cache_hit_rate"] is None
    assert quiet["latency_ms"] == {"p50": None, "p99": None}
    restarted = summarise(Snapshot(0.0, {"model": 50}), Snapshot(2.0, {"model": 4}))
    assert restarted["selections"] == 4


def test_live_window_keeps_about_the_horizon():
    w = LiveWindow(Snapshot(0.0, {"model": 0}), horizon=10.0)
    assert w.observe(Snapshot(5.0, {"model": 5}))["window_seconds"] == 5.0
    assert w.observe(Snapshot(12.0, {"model": 12}))["window_seconds"] == 12.0  # 5.0 is not yet 10 s old
    s = w.observe(Snapshot(30.0, {"model": 48}))
    assert s["window_seconds"] == 18.0 and s["selections_per_second"] == pytest.approx(2.0)
