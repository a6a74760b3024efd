"""What recording every decision costs a selection: two identical services, one with the decision log
and one without (OIRL_DECISION_LOG=false), measured in alternating cells in the same run.

Each service has its own throwaway SQLite store holding one SVAMP model (trained on 300 logged
questions: the model's quality is irrelevant here) and the 6 training prompts as candidates.
Cells: novel questions (each sent once, so every request is encoded) at concurrency 1 and 32,
``--rounds`` times each, alternating logged / not logged so that load from anything else on the
machine hits both alike; the ratio of p50 latencies is taken per round and the median reported.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/decision_overhead.py --root /work/shared/data

Writes benchmarks/results/decision_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from serve import cell, free_port  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS = Path(__file__).parent / "results"


def prepare(home: Path, root: Path) -> None:
    from oirl.embed import make_embedder
    from oirl.ingest import import_benchmark
    from oirl.jobs.retrain import RetrainParams, retrain
    from oirl.registry import ModelRegistry
    from oirl.settings import Settings
    from oirl.store.engine import make_engine, make_session_factory
    from oirl.store.migrate import upgrade

    settings = Settings(home=home)
    upgrade(settings.resolved_database_url)
    factory = make_session_factory(make_engine(settings.resolved_database_url))
    import_benchmark(factory, root, ["svamp"])
    registry = ModelRegistry(factory, settings.resolved_artefact_dir)
    info, _ = retrain(factory, registry, make_embedder(settings), RetrainParams(task="svamp", max_queries=300),
                      alias=None)
    registry.promote(info.id, force=True)


def start(home: Path, port: int, log_decisions: bool) -> subprocess.Popen:
    env = {**os.environ, "OIRL_HOME": str(home), "OIRL_DATABASE_URL": f"sqlite:///{home / 'oirl.db'}",
           "OIRL_RUN_JOBS": "false", "OIRL_DECISION_LOG": str(log_decisions).lower(), "HF_HUB_OFFLINE": "1"}
    env.pop("OIRL_ARTEFACT_DIR", None)
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
                            env=env, cwd=Path(__file__).resolve().parent.parent)


def wait_ready(port: int, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"service on {port} not ready in {timeout} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="benchmark files")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per cell")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    args = ap.parse_args()
    from oirl.datasets.benchmark import load_queries

    pool = list(dict.fromkeys(q for d in ("gsm8k", "mawps") for q in load_queries(d, args.root)))
    np.random.default_rng(0).shuffle(pool)
    cursor = iter(pool)

    def novel() -> str:
        return next(cursor)

    cells, servers = [], []
    with tempfile.TemporaryDirectory(prefix="oirl-overhead-") as tmp:
        base = Path(tmp) / "base"
        prepare(base, args.root)
        homes = {}
        for logged in (True, False):
            home = Path(tmp) / f"logged-{logged}"
            subprocess.run(["cp", "-r", str(base), str(home)], check=True)
            homes[logged] = home
        try:
            ports = {}
            for logged, home in homes.items():
                ports[logged] = free_port()
                servers.append(start(home, ports[logged], logged))
            for port in ports.values():
                wait_ready(port)
                asyncio.run(cell(port, 4, 2.0, novel))  # warm up both alike
            for c in args.concurrency:
                for r in range(args.rounds):
                    for logged in ((True, False) if r % 2 == 0 else (False, True)):
                        res = {"decision_log": logged, "round": r, **asyncio.run(cell(ports[logged], c,
                                                                                      args.duration, novel))}
                        print(json.dumps(res), flush=True)
                        cells.append(res)
        finally:
            for s in servers:
                s.terminate()
                s.wait(30)
    summary = {}
    for c in args.concurrency:
        pairs = [(a, b) for a in cells for b in cells if a["concurrency"] == b["concurrency"] == c
                 and a["round"] == b["round"] and a["decision_log"] and not b["decision_log"]]
        summary[f"c{c}"] = {"p50_ratio_median": float(np.median([a["p50_ms"] / b["p50_ms"] for a, b in pairs])),
                            "rps_ratio_median": float(np.median([a["rps"] / b["rps"] for a, b in pairs])),
                            "errors": int(sum(x["errors"] for x in cells if x["concurrency"] == c)),
                            "target": "p50 ratio <= 1.05"}
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(),
           "duration_s": args.duration, "summary": summary, "cells": cells}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "decision_overhead.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
