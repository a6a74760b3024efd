"""Worker start-up versus uvicorn's health check: GIL stalls while starting, and kills with --workers 2.

How long a starting worker leaves uvicorn's health ping unanswered, and what that does with
`--workers 2` under uvicorn's default 5 s timeout versus OIRL_WORKER_HEALTHCHECK_SECONDS (60).

Each worker loads the encoder and the champion on a startup thread; importing torch and friends
holds the GIL for long stretches, and uvicorn's supervisor kills a worker whose ping thread does
not answer within the timeout. Two measurements:
1. in one process, the longest stall of a thread that wakes every 10 ms, while the app starts up
   (what the ping thread suffers);
2. `uvicorn --workers 2` for a fixed time per timeout: workers killed as hung, time until ready.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/worker_healthcheck.py [--seconds 60]

Writes benchmarks/results/worker_healthcheck.json. Run it on a loaded machine to see the kills.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "app")]
RESULTS = ROOT / "benchmarks" / "results"

STALL_PROBE = r"""
import os, sys, threading, time
gaps = []
def probe():
    last = time.perf_counter()
    while True:
        time.sleep(0.01)
        now = time.perf_counter()
        gaps.append(now - last - 0.01)
        last = now
threading.Thread(target=probe, daemon=True).start()
t0 = time.perf_counter()
from fastapi.testclient import TestClient
from app.main import create_app
with TestClient(create_app()) as c:
    while c.get("/readyz").status_code != 200:
        time.sleep(0.05)
print(f"{max(gaps):.3f} {time.perf_counter() - t0:.2f}")
"""


def stall(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", STALL_PROBE], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    worst, ready = out.stdout.split()[-2:]
    return {"longest_stall_s": float(worst), "ready_after_s": float(ready)}


def workers(env: dict, timeout: int, seconds: float) -> dict:
    import httpx
    from service_support import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--workers", "2",
                             "--port", str(port), "--timeout-worker-healthcheck", str(timeout)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0, ready_at = time.monotonic(), None
    while time.monotonic() - t0 < seconds:
        try:
            if ready_at is None and httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                ready_at = time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    log = proc.communicate(timeout=60)[0]
    return {"timeout_s": timeout, "workers_killed_as_hung": len(re.findall(r"Child process \[\d+\] died", log)),
            "first_ready_s": None if ready_at is None else round(ready_at, 1), "observed_s": seconds}


def main() -> None:
    from service_support import make_settings, save_model, seed_store, synthetic_logs

    from oirl.embed import make_embedder

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        model = save_model(synthetic_logs(), make_embedder("all-MiniLM-L6-v2", cache=False), home / "m")
        url = f"sqlite:///{home / 'oirl.db'}"
        settings = make_settings(home, url)
        seed_store(url, settings.resolved_artefact_dir, model)
        env = {**os.environ, "OIRL_HOME": str(home), "OIRL_DATABASE_URL": url, "OIRL_RUN_JOBS": "false",
               "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
        out = {"what": __doc__.split("\n")[0], "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
               "note": "machine shared with other agents (load average at start above)",
               "startup_stall": [stall(env) for _ in range(3)],
               "workers_2": [workers(env, t, args.seconds) for t in (5, 60)]}
    print(json.dumps(out, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "worker_healthcheck.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
