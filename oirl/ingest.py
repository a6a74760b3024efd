"""Glue between the loaders and the store: import the benchmark logs or a user file, in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from oirl.datasets import userlogs
from oirl.datasets.benchmark import DATASETS, LLM_NAME, PROMPTS, load_benchmark
from oirl.store.engine import transaction
from oirl.store.logs import ImportResult, ensure_tasks, import_observations, link_prompts, upsert_prompts
from oirl.store.models import Task

BENCHMARK_SOURCE = "benchmark:prompt-oirl-llama2"
BENCHMARK_DESCRIPTION = {
    "gsm8k": "GSM8K grade-school maths, LLaMA-2-7B-chat logs (Prompt-OIRL benchmark)",
    "svamp": "SVAMP arithmetic word problems, LLaMA-2-7B-chat logs (Prompt-OIRL benchmark)",
    "mawps": "MAWPS arithmetic word problems, LLaMA-2-7B-chat logs (Prompt-OIRL benchmark)",
}


def benchmark_rows(dataset: str, root: Path) -> pd.DataFrame:
    """The loader's frame in the store's import shape (the dataset is the task)."""
    df = load_benchmark(dataset, root)
    return pd.DataFrame(
        {
            "task": dataset,
            "external_key": df["query_index"].astype(str),
            "query": df["query"],
            "prompt": df["prompt"],
            "reward": df["correct"].astype(float),
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

    Each dataset becomes a task serving LLaMA-2-7B-chat. Its candidates are the six prompts
    logged on training queries (active) and the ten held-out prompts (registered, inactive:
    they were only logged on test queries). Parsing everything before the first write means
    a corrupt file fails the whole import with the database untouched.
    """
    frames = {d: benchmark_rows(d, root) for d in datasets}
    results = {}
    with transaction(factory) as session:
        ids = upsert_prompts(session, [p.text for p in PROMPTS], names={p.text: p.alias for p in PROMPTS})
        for dataset, frame in frames.items():
            task_id = ensure_tasks(session, [dataset], llm=LLM_NAME)[dataset]
            session.get(Task, task_id).description = BENCHMARK_DESCRIPTION.get(dataset, "")
            link_prompts(session, task_id, [ids[p.text] for p in PROMPTS if not p.held_out], active=True)
            link_prompts(session, task_id, [ids[p.text] for p in PROMPTS if p.held_out], active=False)
            results[dataset] = import_observations(session, frame, BENCHMARK_SOURCE)
            if on_dataset:
                on_dataset(dataset, results[dataset])
    return results


def import_user_file(
    factory: sessionmaker[Session], path: Path, skip_invalid: bool = False, task: str | None = None
) -> tuple[ImportResult | None, userlogs.ValidatedLogs]:
    """Validate a user log file; import it unless it has bad rows and ``skip_invalid`` is off.

    ``task``: the task of rows that name none. Returns (None, report) when the file was
    rejected, so the caller can list every problem.
    """
    report = userlogs.validate(userlogs.read_table(path), task=task)
    if report.problems and not skip_invalid:
        return None, report
    with transaction(factory) as session:
        result = import_observations(session, report.rows, source=f"import:{Path(path).name}")
    return result, report
