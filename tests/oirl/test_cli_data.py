"""`oirl data ...` end to end through the real CLI: user files, the real benchmark, bad input."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from oirl.cli import app
from oirl.settings import get_settings
from oirl.store.engine import make_engine, make_session_factory
from oirl.store.logs import count_observations

runner = CliRunner()


@pytest.fixture
def cli_db(database_url, monkeypatch):
    """Point the CLI's settings at a fresh database; return a function counting its outcomes."""
    monkeypatch.setenv("OIRL_DATABASE_URL", database_url)
    get_settings.cache_clear()
    engine = make_engine(database_url)

    def count() -> int:
        from sqlalchemy import inspect

        if "observations" not in inspect(engine).get_table_names():
            return 0
        with make_session_factory(engine)() as s:
            return count_observations(s)

    yield count
    engine.dispose()


def invoke(*args: str):
    return runner.invoke(app, list(args))


GOOD_CSV = (
    "query,prompt,correct,llm\n"
    "what is 2+2?,Let's think step by step: ,TRUE,gpt\n"
    "what is 3+3?,The answer is:,0,gpt\n"
)


def test_import_good_csv_twice_adds_once(cli_db, tmp_path):
    path = tmp_path / "logs.csv"
    path.write_text(GOOD_CSV)
    first = invoke("data", "import", str(path), "--task", "t")
    assert first.exit_code == 0, first.output
    assert "2 new observations" in first.output
    second = invoke("data", "import", str(path), "--task", "t")
    assert second.exit_code == 0 and "0 new observations, 2 already present" in second.output
    assert cli_db() == 2


def test_bad_csv_is_rejected_whole_with_every_bad_row_named(cli_db, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(GOOD_CSV + ",p,true,gpt\nq,p,yes,gpt\n")
    result = invoke("data", "import", str(path), "--task", "t")
    assert result.exit_code == 1
    assert "row 3: query is empty" in result.output
    assert "row 4: correct must be one of true/false/1/0, got 'yes'" in result.output
    assert "2 of 4 rows invalid; nothing imported" in result.output
    assert cli_db() == 0
    skipped = invoke("data", "import", str(path), "--skip-invalid", "--task", "t")
    assert skipped.exit_code == 0 and "2 invalid rows skipped" in skipped.output
    assert cli_db() == 2


def test_rows_for_another_llm_are_refused_at_import_with_the_count_and_the_fix(cli_db, tmp_path):
    assert invoke("tasks", "create", "support", "--llm", "gpt-x").exit_code == 0
    f = tmp_path / "logs.csv"
    f.write_text("query,prompt,correct,llm\nWhere is it?,Be brief: ,1,gpt-4o-mini\nWhat now?,Be brief: ,0,gpt-x\n")
    result = invoke("data", "import", str(f), "--task", "support")
    assert result.exit_code == 1 and cli_db() == 0
    assert "1 row(s) of task 'support' name llm 'gpt-4o-mini', but the task serves 'gpt-x'" in result.output
    assert "import them into a task of their own" in result.output


def test_missing_column_and_missing_file_are_clear(cli_db, tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("query,prompt\nq,p\n")
    result = invoke("data", "import", str(path))
    assert result.exit_code == 1 and "missing required column(s): correct" in result.output
    assert invoke("data", "import", str(tmp_path / "nope.csv")).exit_code == 1


def test_stats_on_empty_store_says_what_to_do(cli_db):
    result = invoke("data", "stats")
    assert result.exit_code == 0 and "import-benchmark" in result.output


def test_unknown_dataset_is_a_usage_error(cli_db):
    result = invoke("data", "import-benchmark", "--dataset", "mnist")
    assert result.exit_code == 2 and "unknown dataset(s) mnist" in result.output


@pytest.mark.realdata
@pytest.mark.slow
def test_import_real_benchmark_exact_count_and_idempotent(cli_db, mirror_dir):
    first = invoke("data", "import-benchmark", "--mirror", str(mirror_dir))
    assert first.exit_code == 0, first.output
    assert cli_db() == 288_838
    second = invoke("data", "import-benchmark")
    assert second.exit_code == 0 and "added 0 observations" in second.output
    assert cli_db() == 288_838
    stats = invoke("data", "stats")
    assert "svamp / llama-2-7b-chat / train: 90,000 observations" in stats.output
    assert "gsm8k / llama-2-7b-chat / test: 16,000 observations" in stats.output


@pytest.mark.realdata
def test_corrupt_mirror_file_fails_clearly_and_leaves_database_unchanged(cli_db, mirror_dir, tmp_path):
    (tmp_path / "logs.csv").write_text(GOOD_CSV)
    assert invoke("data", "import", str(tmp_path / "logs.csv"), "--task", "t").exit_code == 0
    mirror = tmp_path / "mirror"
    shutil.copytree(mirror_dir, mirror)
    victim = "prompt-oirl/llama_exps/llama2_chat_logs/mawps/llama_mawps_corr_CoT.txt"
    with open(mirror / victim, "a") as fh:
        fh.write("(7685, True)\n")
    result = invoke("data", "import-benchmark", "--mirror", str(mirror), "--dataset", "mawps")
    assert result.exit_code == 1
    assert victim in result.output  # names the file...
    assert "baac50d32eb43c0253d746b1cc578ee155004b3515ad9995b716de6fefb1dafe" in result.output  # ...and checksum
    assert cli_db() == 2
