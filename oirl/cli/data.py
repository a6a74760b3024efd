"""`oirl data ...`: fetch and verify the benchmark files, import logs, print statistics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from oirl.cli.common import ensure_benchmark, fail, open_store, user_errors
from oirl.datasets.benchmark import DATASETS, BenchmarkFormatError
from oirl.datasets.fetch import BenchmarkFileError, fetch, manifest
from oirl.datasets.userlogs import LogFileError
from oirl.ingest import import_benchmark, import_user_file
from oirl.settings import get_settings
from oirl.store.logs import LlmMismatch, accuracy_table, count_observations

app = typer.Typer(help="Benchmark files and prompting logs.", no_args_is_help=True)

MirrorOpt = Annotated[
    Path | None,
    typer.Option(
        "--mirror",
        help="Directory with the benchmark files in upstream layout (default: OIRL_MIRROR_DIR); "
        "without it, files are downloaded from GitHub at pinned commits.",
        exists=True,
        file_okay=False,
    ),
]
MAX_LISTED_PROBLEMS = 50


@app.command("fetch")
def fetch_cmd(
    mirror: MirrorOpt = None,
    dest: Annotated[Path | None, typer.Option(help="Target directory (default: OIRL_BENCHMARK_DIR).")] = None,
) -> None:
    """Download (or copy from --mirror) the benchmark files and verify every SHA-256."""
    settings = get_settings()
    target = dest or settings.resolved_benchmark_dir
    with user_errors(BenchmarkFileError):
        done = fetch(target, mirror=mirror or settings.mirror_dir)
    typer.echo(f"{len(manifest())} files verified in {target} ({len(done)} transferred)")


@app.command("import-benchmark")
def import_benchmark_cmd(
    mirror: MirrorOpt = None,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", "-d", help="Only these datasets (repeatable).")
    ] = None,
) -> None:
    """Load the LLaMA-2 GSM8K/SVAMP/MAWPS logs into the store as tasks gsm8k, svamp, mawps
    (idempotent: a second run adds nothing)."""
    chosen = dataset or list(DATASETS)
    unknown = sorted(set(chosen) - set(DATASETS))
    if unknown:
        fail(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(DATASETS)}", code=2)
    start = time.perf_counter()
    with user_errors(BenchmarkFileError, BenchmarkFormatError):
        root = ensure_benchmark(mirror)
        factory = open_store()
        results = import_benchmark(
            factory,
            root,
            chosen,
            on_dataset=lambda d, r: typer.echo(f"{d:6s}: {r.rows:>7,} rows, {r.inserted:>7,} new"),
        )
    with factory() as session:
        total = count_observations(session)
    added = sum(r.inserted for r in results.values())
    typer.echo(f"added {added:,} observations in {time.perf_counter() - start:.1f}s; store holds {total:,} "
               f"(tasks: {', '.join(chosen)})")


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet with columns query, prompt, correct (or "
                                             "reward) [, task, llm, split, propensity, decision_id, "
                                             "observation_id, logged_at].")],
    task: Annotated[str | None, typer.Option(
        "--task", "-t", help="Task of rows without a task column (created if new).")] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the good rows and report the bad ones.")
    ] = False,
) -> None:
    """Import your own prompting logs: one row per try. Repeated tries of a query and prompt are
    kept; importing the same file again adds nothing. A file with any bad row is rejected whole."""
    with user_errors(LogFileError, LlmMismatch):
        factory = open_store()
        result, report = import_user_file(factory, file, skip_invalid=skip_invalid, task=task)
    for problem in report.problems[:MAX_LISTED_PROBLEMS]:
        typer.echo(f"  {problem}", err=True)
    if len(report.problems) > MAX_LISTED_PROBLEMS:
        typer.echo(f"  ... and {len(report.problems) - MAX_LISTED_PROBLEMS} more", err=True)
    if result is None:
        fail(f"{file}: {len(report.problems)} of {report.total} rows invalid; nothing imported "
             "(fix them, or pass --skip-invalid)")
    skipped = f", {len(report.problems)} invalid rows skipped" if report.problems else ""
    typer.echo(f"{file}: {result.inserted:,} new observations, {result.already_present:,} already present{skipped}")


@app.command("feedback")
def feedback_cmd(
    file: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet with columns decision_id and correct "
                                             "(true/false) or reward (0..1).")],
) -> None:
    """Judge served decisions from a file: each becomes an observation with its propensity. Sending
    the same file again changes nothing; unknown, expired or conflicting rows are listed."""
    from oirl.datasets.userlogs import read_feedback_file
    from oirl.feedback import record_feedback

    with user_errors(LogFileError):
        items, problems = read_feedback_file(file)
    for problem in problems[:MAX_LISTED_PROBLEMS]:
        typer.echo(f"  {problem}", err=True)
    if problems:
        fail(f"{file}: {len(problems)} rows invalid; nothing recorded")
    results = record_feedback(open_store(), items, get_settings().decision_retention_days)
    refused = [r for r in results if r.status not in ("recorded", "already_recorded")]
    for r in refused[:MAX_LISTED_PROBLEMS]:
        typer.echo(f"  {r.decision_id}: {r.status} {r.detail}", err=True)
    counts = {s: sum(r.status == s for r in results) for s in ("recorded", "already_recorded")}
    typer.echo(f"{file}: {counts['recorded']:,} recorded, {counts['already_recorded']:,} already recorded, "
               f"{len(refused):,} refused")
    if refused:
        raise typer.Exit(1)


@app.command("stats")
def stats_cmd() -> None:
    """Observations and mean reward per task, LLM, split and prompt."""
    factory = open_store()
    with factory() as session:
        table = accuracy_table(session)
    if table.empty:
        typer.echo("the store is empty: run `oirl data import-benchmark` or `oirl data import FILE`")
        return
    for (task, llm, split), group in table.groupby(["task", "llm", "split"], sort=False):
        overall = (group["accuracy"] * group["rows"]).sum() / group["rows"].sum()
        typer.echo(f"\n{task} / {llm} / {split}: {group['rows'].sum():,} observations, mean reward {overall:.3f}")
        for row in group.itertuples(index=False):
            typer.echo(f"  [{row.prompt_id:>3}] {row.prompt:<42s} {row.rows:>7,}  {row.accuracy:.3f}")
