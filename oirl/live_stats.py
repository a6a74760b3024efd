"""Live serving figures from counter snapshots: rates, shares and latency quantiles over a window.

The service takes a ``Snapshot`` of its counters (selections by outcome, cache lookups, the
latency histogram of the selection route) whenever someone asks, and ``LiveWindow`` compares it
with the oldest snapshot still inside the horizon, so the figures describe the last minute or so
rather than the whole life of the process. Pure arithmetic: nothing here knows Prometheus or HTTP.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Snapshot:
    at: float
    """Monotonic seconds when the counters were read."""
    selections: dict[str, float] = field(default_factory=dict)
    """Selections so far by outcome (``model``, ``fallback``, ``explored``, ...)."""
    cache: dict[str, float] = field(default_factory=dict)
    """Selection-cache lookups so far by result (``hit``, ``miss``)."""
    latency: tuple[tuple[float, float], ...] = ()
    """Cumulative histogram of selection latency: (upper bound in seconds, count <= bound), ascending, +inf last."""


def histogram_quantile(q: float, buckets: tuple[tuple[float, float], ...]) -> float | None:
    """The q-quantile of a cumulative histogram, linear within the bucket (as Prometheus does).

    None when the histogram is empty. A quantile in the +inf bucket answers the largest finite bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def _delta(new: dict[str, float], old: dict[str, float]) -> dict[str, float]:
    # A counter that went down means the process restarted: count from zero again.
    return {k: (v - old.get(k, 0.0)) if v >= old.get(k, 0.0) else v for k, v in new.items()}


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def summarise(old: Snapshot, new: Snapshot) -> dict:
    """What happened between two snapshots: rates, shares (None when nothing happened) and latency."""
    seconds = max(new.at - old.at, 1e-9)
    sel = _delta(new.selections, old.selections)
    total = sum(sel.values())
    cache = _delta(new.cache, old.cache)
    old_lat = dict(old.latency)
    latency = tuple((b, c - old_lat.get(b, 0.0) if c >= old_lat.get(b, 0.0) else c) for b, c in new.latency)
    p50, p99 = histogram_quantile(0.5, latency), histogram_quantile(0.99, latency)
    return {
        "window_seconds": round(seconds, 3),
        "selections": int(total),
        "selections_per_second": total / seconds,
        "fallback_share": _share(sel.get("fallback", 0.0), total),
        "exploration_share": _share(sel.get("explored", 0.0), total),
        "cache_hit_rate": _share(cache.get("hit", 0.0), sum(cache.values())),
        "latency_ms": {"p50": None if p50 is None else 1000 * p50, "p99": None if p99 is None else 1000 * p99},
    }


class LiveWindow:
    """Keeps recent snapshots; ``observe`` adds one and summarises since the oldest within ``horizon``."""

    def __init__(self, start: Snapshot, horizon: float = 60.0):
        self.horizon = horizon
        self._snapshots: deque[Snapshot] = deque([start])

    def observe(self, now: Snapshot) -> dict:
        # Keep at least one older snapshot so two calls a second apart still have a window.
        while len(self._snapshots) > 1 and now.at - self._snapshots[1].at >= self.horizon:
            self._snapshots.popleft()
        summary = summarise(self._snapshots[0], now)
        self._snapshots.append(now)
        return summary
