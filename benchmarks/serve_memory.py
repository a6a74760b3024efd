"""RSS of a real server process after many distinct large /v1/select requests, with the answer cache
bounded by bytes (the default, 64 MiB) and, for comparison, effectively unbounded (as when it was
bounded by 20,000 entries: each of these answers holds ~1 MB).

The load and the measurement are the memory test's (tests/app/test_memory.py): N distinct requests,
each an 8,000-character query with 64 candidate texts of 8,000 characters, against
`uvicorn app.main:create_app --factory` in its own process; RSS by psutil.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serve_memory.py [--requests 400]

Writes benchmarks/results/serve_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "app")]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    from service_support import make_settings, save_model, seed_store, server_process, synthetic_logs
    from test_memory import drive

    from oirl.embed import make_embedder

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=400)
    args = ap.parse_args()
    cells = {"bytes-bounded (default 64 MiB)": {}, "unbounded (10 GiB)": {"OIRL_ANSWER_CACHE_BYTES": str(10 << 30)}}
    out = {"what": __doc__.split("\n")[0], "requests_after_warmup": args.requests, "python": platform.python_version(),
           "cpus": os.cpu_count(), "note": "machine shared with other agents; RSS is not timing-sensitive",
           "cells": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model = save_model(synthetic_logs(), make_embedder("all-MiniLM-L6-v2", cache=False), Path(tmp) / "m")
        for name, env in cells.items():
            home = Path(tmp) / name.split()[0]
            url = f"sqlite:///{home / 'oirl.db'}"
            settings = make_settings(home, url)
            seed_store(url, settings.resolved_artefact_dir, model)
            t0 = time.perf_counter()
            with server_process(settings, **env) as (base, pid):
                figures = drive(base, pid, n_requests=args.requests)
            out["cells"][name] = {**figures, "seconds": round(time.perf_counter() - t0, 1)}
            print(name, out["cells"][name], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve_memory.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
