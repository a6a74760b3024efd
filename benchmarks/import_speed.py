"""Time `oirl data import-benchmark` into SQLite and PostgreSQL (first run and idempotent re-run).

    python benchmarks/import_speed.py [--mirror ../shared/data] [--postgres URL] [--out benchmarks/results/import.json]

Each run uses a fresh database (a temporary SQLite file; a private PostgreSQL schema) and a
fresh process, so the numbers include start-up, checksum verification, parsing and writing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(env: dict[str, str], mirror: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "oirl.cli.__main__", "data", "import-benchmark", "--mirror", mirror],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def measure(url: str, mirror: str, home: str) -> dict[str, float]:
    env = {**os.environ, "OIRL_DATABASE_URL": url, "OIRL_HOME": home, "HF_HUB_OFFLINE": "1"}
    first = _run(env, mirror)
    second = _run(env, mirror)
    return {"first_import_s": round(first, 2), "rerun_s": round(second, 2), "rows": 288_838,
            "rows_per_s": round(288_838 / first)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", default=os.environ.get("OIRL_MIRROR_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--postgres", default=os.environ.get("OIRL_TEST_DATABASE_URL"),
                    help="PostgreSQL URL (a private schema is created and dropped)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "import.json"))
    args = ap.parse_args()
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    with tempfile.TemporaryDirectory() as home:
        results["sqlite"] = measure(f"sqlite:///{home}/bench.db", args.mirror, home)
        print("sqlite", results["sqlite"], flush=True)
        if args.postgres:
            from sqlalchemy import create_engine, text

            schema = f"bench_{uuid.uuid4().hex[:8]}"
            base = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1)
            admin = create_engine(base)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            sep = "&" if "?" in base else "?"
            try:
                results["postgresql"] = measure(f"{base}{sep}options=-csearch_path%3D{schema}", args.mirror, home)
                print("postgresql", results["postgresql"], flush=True)
            finally:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
