"""The one place that decides how many threads the encoder runtime, torch and LightGBM use.

Every service worker is a process with its own thread pools. Oversubscribing cores makes
OpenMP teams wait on each other, which on a small machine costs far more than it gains. In one
worker the encoder and the reward model run one after the other on the encoder thread, so each
may use all of that worker's share of the cores: ``cores // workers``, at least one. Training
jobs in the same worker use the same share. ``benchmarks/encoder_backends.py`` measures the
encoder at 1 and 2 threads, the figures behind this rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadPlan:
    encoder: int
    """intra-op threads of the ONNX Runtime session."""
    torch: int
    """``torch.set_num_threads`` (torch encoder, MLP reward model)."""
    lightgbm: int
    """``num_threads`` of LightGBM training and prediction (XGBoost's ``nthread`` too)."""


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def plan_threads(workers: int = 1, cores: int | None = None) -> ThreadPlan:
    share = max(1, (cores or available_cores()) // max(1, workers))
    # LightGBM's own default is every core; more than 4 buys nothing on these small matrices.
    return ThreadPlan(encoder=share, torch=share, lightgbm=min(share, 4))


_plan: ThreadPlan | None = None


def current_plan() -> ThreadPlan:
    """The configured plan, or the one for a single worker."""
    return _plan or plan_threads()


def configure_threads(workers: int = 1, cores: int | None = None) -> ThreadPlan:
    """Set this process's plan (the service calls it once at start) and apply it to torch if loaded."""
    global _plan
    _plan = plan_threads(workers, cores)
    import sys

    if "torch" in sys.modules:  # never import torch just to set its threads
        sys.modules["torch"].set_num_threads(_plan.torch)
    else:
        os.environ.setdefault("OMP_NUM_THREADS", str(_plan.torch))
    return _plan
