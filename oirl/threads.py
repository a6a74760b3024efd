"""The one place that decides how many threads the encoder runtime, torch and LightGBM use.

Every service worker is a process with its own thread pools. Oversubscribing cores makes
thread teams wait on each other, which on a small machine costs far more than it gains. A
worker's share is ``cores // workers`` (at least one). The encoder gets half of it: the event
loop (HTTP parsing, JSON, the answer cache) runs beside the encoder thread and needs a core
of its own under load. Measured on 2 shared cores (``benchmarks/encoders.py``, sub-batch
sweep, ms per query of a micro-batch of 32): with ONNX Runtime's pool threads spinning, 2
threads took 52-62 ms and 1 thread 24-41 ms (results/encoders_agreement.json); with spinning
off (now the setting) 2 threads took 44-66 ms and 1 thread 72-103 ms (results/encoders.json).
So on 2 cores the choice is not settled by the bare encoder; the served figures
(results/serve.json) were measured with this rule (1 thread). The encoder and the reward
model run one after the other on the encoder thread, so torch (the torch encoder, the MLP)
uses the encoder's count; LightGBM's training jobs use the whole share (up to 4: more buys
nothing on these small matrices).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ThreadPlan:
    encoder: int
    """intra-op threads of the ONNX Runtime session."""
    torch: int
    """``torch.set_num_threads`` (torch encoder, MLP reward model)."""
    lightgbm: int
    """``num_threads`` of LightGBM training and prediction (XGBoost's ``nthread`` too)."""


def available_cores() -> int:
    """CPUs this process may use: its affinity, capped by a container's CPU limit. In a pod the
    affinity is the whole node (say 32 cores) while a 2-CPU limit throttles every thread past
    two; planning 16 encoder threads there would make each query wait on the quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return max(1, min(cores, math.ceil(limit))) if limit else cores


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU limit of this process's cgroup in CPUs (cgroup v2 ``cpu.max``, else v1's CFS quota),
    or None when there is none (``max`` / ``-1``) or it cannot be read."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for v1 in ("cpu", "cpu,cpuacct"):
        try:
            quota = int((root / v1 / "cpu.cfs_quota_us").read_text())
            period = int((root / v1 / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return quota / period if quota > 0 and period > 0 else None
    return None


def plan_threads(workers: int = 1, cores: int | None = None) -> ThreadPlan:
    share = max(1, (cores or available_cores()) // max(1, workers))
    encoder = max(1, share // 2)
    return ThreadPlan(encoder=encoder, torch=encoder, lightgbm=min(share, 4))


_plan: ThreadPlan | None = None


def current_plan() -> ThreadPlan:
    """The configured plan, or the one for a single worker."""
    return _plan or plan_threads()


def configure_threads(workers: int = 1, cores: int | None = None) -> ThreadPlan:
    """Set this process's plan (the service calls it once at start) and apply it to torch if loaded
    (the torch encoder applies it when it loads torch: never import torch just to set its threads)."""
    global _plan
    _plan = plan_threads(workers, cores)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_plan.torch)
    return _plan
