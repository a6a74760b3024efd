"""Glue between the loaders and the store: import the benchmark logs or a user file, in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from oirl.datasets import userlogs
from oirl.datasets.benchmark import DATASETS, LLM_NAME, PROMPTS, load_benchmark
from oirl.store.engine import transaction
from oirl.store.logs import ImportResult, import_outcomes, upsert_prompts

BENCHMARK_SOURCE = "benchmark:prompt-oirl-llama2"


def benchmark_rows(dataset: str, root: Path) -> pd.DataFrame:
    """The loader's frame in the store's import shape."""
    df = load_benchmark(dataset, root)
    return pd.DataFrame(
        {
            "dataset": dataset,
            "external_key": df["query_index"].astype(str),
            "query": df["query"],
            "prompt": df["prompt"],
            "correct": df["correct"],
            "llm": LLM_NAME,
            "split": df["split"],
        }
    )


def import_benchmark(
    factory: sessionmaker[Session],
    root: Path,
    datasets: Iterable[str] = DATASETS,
    on_dataset: Callable[[str, ImportResult], None] | None = None,
) -> dict[str, ImportResult]:
    """Load and verify every dataset first, then write all of them in one transaction.

    Parsing everything before the first write means a corrupt file fails the whole
    import with the database untouched.
    """
    frames = {d: benchmark_rows(d, root) for d in datasets}
    results = {}
    with transaction(factory) as session:
        upsert_prompts(session, [p.text for p in PROMPTS], names={p.text: p.alias for p in PROMPTS})
        for dataset, frame in frames.items():
            results[dataset] = import_outcomes(session, frame, BENCHMARK_SOURCE)
            if on_dataset:
                on_dataset(dataset, results[dataset])
    return results


def import_user_file(
    factory: sessionmaker[Session], path: Path, skip_invalid: bool = False
) -> tuple[ImportResult | None, userlogs.ValidatedLogs]:
    """Validate a user log file; import it unless it has bad rows and ``skip_invalid`` is off.

    Returns (None, report) when the file was rejected, so the caller can list every problem.
    """
    report = userlogs.validate(userlogs.read_table(path))
    if report.problems and not skip_invalid:
        return None, report
    with transaction(factory) as session:
        result = import_outcomes(session, report.rows, source=f"import:{Path(path).name}")
    return result, report
