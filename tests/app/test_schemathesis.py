"""schemathesis against a live uvicorn on 127.0.0.1, with the admin token: every operation of
/openapi.json, generated valid and invalid requests, stateful sequences (POST a job, GET it), and
the checks that the service never answers 5xx and always answers as documented (status codes,
content types, headers, response schemas). Bounded: a few examples per operation, a time budget.

Select it alone with ``-m schemathesis``; the full suite runs it too (about two minutes)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from service_support import TOKEN, live_server

pytestmark = [pytest.mark.schemathesis, pytest.mark.slow]

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance")
MAX_EXAMPLES, MAX_SECONDS = 10, 120


def schemathesis_cli() -> list[str]:
    beside = Path(sys.executable).with_name("schemathesis")
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    return [found]


def test_schemathesis_finds_no_failure(settings, minilm, training_embedder, tmp_path):
    cli = schemathesis_cli()
    with live_server(settings, minilm, training_embedder) as base:
        run = subprocess.run(
            [*cli, "run", f"{base}/openapi.json", "-H", f"Authorization: Bearer {TOKEN}", "--checks", CHECKS,
             "--max-examples", str(MAX_EXAMPLES), "--max-time", str(MAX_SECONDS), "--seed", "1", "--no-color",
             "--report", "junit", "--report-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=MAX_SECONDS + 120, cwd=tmp_path)
    out = run.stdout + run.stderr
    summary = out[out.find("SUMMARY"):]
    print(summary)  # operations tested, test cases generated / passed: the figures for the record
    tested = re.search(r"Tested: (\d+)", summary)
    cases = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert run.returncode == 0, out[-6000:]
    assert tested and int(tested.group(1)) >= 20, summary  # every operation of the document
    assert cases and cases.group(1) == cases.group(2), summary
