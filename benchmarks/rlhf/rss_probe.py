"""Peak-memory probe shared by both benchmark workers (stdlib only, so it runs in the TRL venvs too).

CPU has no `max_memory_allocated`, so we sample the resident set size from /proc every few ms and also
read the kernel's lifetime peak (ru_maxrss). `train_peak_mb` is the growth over the RSS measured just
before training starts, i.e. what training itself costs beyond the loaded models and imports.
"""

from __future__ import annotations

import os
import resource
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


class PeakRSS:
    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self.baseline = interval, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.baseline = self.peak = rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())

    def report(self) -> dict:
        return {"rss_before_train_mb": round(self.baseline, 1), "train_peak_mb": round(self.peak - self.baseline, 1),
                "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def summarise_times(times: list[float]) -> dict:
    """Seconds per update, the first (warm-up) update excluded from the median and mean."""
    steady = sorted(times[1:]) or times
    return {"updates": len(times), "first_update_s": round(times[0], 4),
            "s_per_update_median": round(steady[len(steady) // 2], 4),
            "s_per_update_mean": round(sum(steady) / len(steady), 4)}
