"""First start on a fresh machine: benchmark logs in the store and a first champion per task.

Both steps are skipped when already done, so ``oirl serve --bootstrap`` is safe to run on
every start. Each benchmark task's first model is trained with the same code as
``oirl train`` and ``POST /admin/retrain``, on a seeded subsample of its logged training
questions (``settings.bootstrap_max_queries``) to keep a cold start on 2 CPU cores within a
few minutes; a retrain on everything can follow later.
"""

from __future__ import annotations

from collections.abc import Callable

from oirl.datasets.benchmark import DATASETS
from oirl.jobs.retrain import RetrainParams, retrain
from oirl.registry import ModelRegistry
from oirl.settings import Settings
from oirl.store.logs import count_observations


def bootstrap(settings: Settings, factory, embedder, echo: Callable[[str], None] = print) -> dict[str, int]:
    """Import missing benchmark tasks, then train + promote a first model for each task without
    a champion. Returns task -> champion version."""
    from oirl.cli.common import ensure_benchmark
    from oirl.ingest import import_benchmark

    with factory() as s:
        missing = [d for d in DATASETS if count_observations(s, task=d) == 0]
    if missing:
        echo(f"bootstrap: importing benchmark logs ({', '.join(missing)}) ...")
        root = ensure_benchmark(settings.mirror_dir, settings)
        results = import_benchmark(factory, root, missing)
        echo(f"bootstrap: {sum(r.inserted for r in results.values()):,} observations imported")
    registry = ModelRegistry.from_settings(factory, settings)
    champions = registry.champions()
    for task in DATASETS:
        if task in champions:
            echo(f"bootstrap: task {task}: champion is model v{champions[task]}")
            continue
        params = RetrainParams(task=task, max_queries=settings.bootstrap_max_queries)
        echo(f"bootstrap: task {task}: training a first model on {params.max_queries:,} logged training "
             f"questions (embedder {settings.embedder}) ...")
        info, metrics = retrain(factory, registry, embedder, params, alias=None,
                                min_gate_queries=settings.gate_min_queries,
                                min_lower_bound=settings.gate_min_lower_bound)
        registry.promote(info.id, force=True, reason="bootstrap: first model")
        champions[task] = info.id
        gate = metrics["gate"]
        echo(f"bootstrap: task {task}: model v{info.id} is champion ({gate['metric']} {gate['challenger']:.3f} on "
             f"{gate['n_queries']} held-out questions)")
    return champions
