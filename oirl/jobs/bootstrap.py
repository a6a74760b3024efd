"""First start on a fresh machine: benchmark logs in the store and a first champion.

Both steps are skipped when already done, so ``oirl serve --bootstrap`` is safe to run on
every start. The first model is trained on a seeded subsample of the logged training
questions (``settings.bootstrap_max_queries``, default 2,000 of ~22,000 distinct ones) to
keep a cold start on 2 CPU cores within a few minutes; ``POST /admin/retrain`` trains on
everything later.
"""

from __future__ import annotations

from collections.abc import Callable

from oirl.datasets.benchmark import DATASETS, LLM_NAME
from oirl.jobs.retrain import RetrainParams, retrain
from oirl.registry import ModelRegistry
from oirl.settings import Settings
from oirl.store.logs import count_outcomes


def bootstrap(settings: Settings, factory, embedder, echo: Callable[[str], None] = print) -> int:
    """Import missing benchmark datasets, train + promote a first model if there is no champion.
    Returns the champion version."""
    from oirl.cli.common import ensure_benchmark
    from oirl.ingest import import_benchmark

    with factory() as s:
        missing = [d for d in DATASETS if count_outcomes(s, dataset=d) == 0]
    if missing:
        echo(f"bootstrap: importing benchmark logs ({', '.join(missing)}) ...")
        root = ensure_benchmark(settings.mirror_dir, settings)
        results = import_benchmark(factory, root, missing)
        echo(f"bootstrap: {sum(r.inserted for r in results.values()):,} outcomes imported")
    registry = ModelRegistry(factory, settings.resolved_artefact_dir)
    champion = registry.alias("champion")
    if champion is not None:
        echo(f"bootstrap: champion is model v{champion}")
        return champion
    params = RetrainParams(llm=LLM_NAME, max_queries=settings.bootstrap_max_queries)
    echo(f"bootstrap: training a first model on {params.max_queries:,} logged training questions "
         f"(embedder {settings.embedder}) ...")
    info, metrics = retrain(factory, registry, embedder, params, alias=None)
    registry.promote(info.id, force=True, reason="bootstrap: first model")
    hold = metrics["holdout"]
    echo(f"bootstrap: model v{info.id} is champion (held-out accuracy {hold['accuracy']:.3f} "
         f"vs best single prompt {hold['default_prompt_accuracy'] or float('nan'):.3f}, "
         f"{hold['n_queries']} questions)")
    return info.id
