"""Load test of POST /v1/select on loopback, next to the bare encoder's time for the same queries.

Bounded: its own uvicorn on a free 127.0.0.1 port, a fixed duration per cell, stops by itself.
Cells: {novel, repeated} queries x concurrency {1, 8, 32}, 16 candidate prompts (the
benchmark's 16). Novel queries are real GSM8K/SVAMP questions, each sent once (no cache can
help); repeated queries cycle through 64 questions answered once beforehand (the answer cache).
The served model is a copy of the champion of an existing store (default: the configured
one, e.g. after `oirl serve --bootstrap`), registered in a throwaway store, so nothing of
yours is touched.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serve.py [--duration 10] [--source-home DIR]

Writes benchmarks/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the service's setting (app/__init__.py): same for the baseline
RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def questions(settings) -> list[str]:
    from oirl.datasets.benchmark import load_queries

    root = settings.resolved_benchmark_dir
    out: list[str] = []
    for d in ("gsm8k", "svamp", "mawps"):
        try:
            out += list(load_queries(d, root))
        except Exception:  # a dataset not fetched: use what there is
            pass
    if not out:
        sys.exit(f"no benchmark questions under {root}: run `oirl data fetch` (or `oirl serve --bootstrap`) first")
    return list(dict.fromkeys(out))


def prepare_home(source, home: Path, task: str = "gsm8k") -> str:
    """A throwaway store with the source task's champion (as v1) and its 16 benchmark prompts, all active."""
    from oirl.datasets.benchmark import PROMPTS
    from oirl.registry import ModelRegistry
    from oirl.store.engine import make_engine, make_session_factory
    from oirl.store.migrate import upgrade
    from oirl.tasks import TaskSpec, create_task

    src = ModelRegistry(make_session_factory(make_engine(source.resolved_database_url)),
                        source.resolved_artefact_dir)
    champion = src.champions().get(task)
    if champion is None:
        sys.exit(f"no {task} champion in {source.resolved_database_url}: run `oirl serve --bootstrap` first")
    info = src.verify(champion)
    url = f"sqlite:///{home / 'oirl.db'}"
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    create_task(factory, TaskSpec(name=task, prompts=[p.text for p in PROMPTS]))
    dst = ModelRegistry(factory, home / "models")
    v = dst.register(Path(info.artefact_path))
    dst.promote(v.id)
    return f"v{champion} of {source.resolved_database_url} ({info.backend}, {info.embedder})"


def bare_encoder(queries: list[str], n_single: int) -> dict:
    """The encoder alone on the same kind of queries: one at a time, and in batches of 32.

    Measured on a worker thread, as the service runs it: on a busy machine torch's OpenMP
    threads behave very differently when called from the main thread (often much slower for
    single short inputs), and a baseline that slow would flatter the service.
    """
    from concurrent.futures import ThreadPoolExecutor

    from oirl.embed import make_embedder

    emb = make_embedder(os.environ.get("OIRL_EMBEDDER", "all-MiniLM-L6-v2"), cache=False)
    emb.encode(["warm up"])

    def run() -> dict:
        single = []
        for q in queries[:n_single]:
            t = time.perf_counter()
            emb.encode([q])
            single.append(time.perf_counter() - t)
        batch = queries[n_single:n_single + 256]
        t = time.perf_counter()
        for i in range(0, len(batch), 32):
            emb.encode(batch[i:i + 32])
        per_q_batched = (time.perf_counter() - t) / len(batch)
        return {"single_query_ms_p50": 1000 * float(np.median(single)),
                "single_query_ms_mean": 1000 * float(np.mean(single)),
                "single_query_ms_p99": 1000 * float(np.percentile(single, 99)),
                "batch32_ms_per_query": 1000 * per_q_batched, "n_single": len(single)}

    with ThreadPoolExecutor(max_workers=1) as ex:
        return ex.submit(run).result()


async def one_connection(port: int, next_query, stop_at: float, lat: list, errors: list) -> None:
    """A keep-alive HTTP/1.1 connection sending requests back to back (a minimal client, low overhead)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            body = json.dumps({"query": next_query()}).encode()
            req = (b"POST /v1/select HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            t = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n")[0].decode())
    finally:
        writer.close()


async def cell(port: int, concurrency: int, duration: float, next_query) -> dict:
    lat: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    await asyncio.gather(*(one_connection(port, next_query, start + duration, lat, errors)
                           for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    ms = np.array(lat) * 1000
    return {"concurrency": concurrency, "requests": len(lat), "errors": len(errors), "seconds": elapsed,
            "rps": len(lat) / elapsed, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "first_errors": errors[:3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per cell")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--source-home", type=Path, default=None, help="store whose champion is served (default: settings)")
    ap.add_argument("--out", type=Path, default=RESULTS / "serve.json")
    args = ap.parse_args()

    from oirl.settings import Settings, get_settings

    source = Settings(home=args.source_home) if args.source_home else get_settings()
    pool = questions(source)
    rng = np.random.default_rng(0)
    rng.shuffle(pool)
    print(f"{len(pool):,} distinct benchmark questions; measuring the bare encoder ...", flush=True)
    encoder = bare_encoder(pool, n_single=300)
    print(json.dumps(encoder), flush=True)

    with tempfile.TemporaryDirectory(prefix="oirl-bench-") as tmp:
        home = Path(tmp)
        served = prepare_home(source, home)
        port = free_port()
        env = {**os.environ, "OIRL_HOME": str(home), "OIRL_DATABASE_URL": f"sqlite:///{home / 'oirl.db'}",
               "OIRL_RUN_JOBS": "false", "HF_HUB_OFFLINE": "1"}
        env.pop("OIRL_ARTEFACT_DIR", None)
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
                                   "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                                   "--no-access-log"], env=env, cwd=Path(__file__).resolve().parent.parent)
        try:
            import httpx

            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                sys.exit("service did not become ready in 180 s")
            cands = httpx.post(f"http://127.0.0.1:{port}/v1/select", json={"query": "warm"}).json()["ranking"]
            assert len(cands) == 16, len(cands)

            cursor = iter(pool[556:])  # past the encoder's own sample; every novel request is a new question
            counter = [0]

            def novel() -> str:
                counter[0] += 1
                return next(cursor, None) or f"{pool[counter[0] % len(pool)]} (variant {counter[0]})"

            repeated_pool = pool[:64]
            for q in repeated_pool:  # answer each once: from now on they are cache hits
                httpx.post(f"http://127.0.0.1:{port}/v1/select", json={"query": q})
            rep = [0]

            def repeated() -> str:
                rep[0] += 1
                return repeated_pool[rep[0] % len(repeated_pool)]

            cells = []
            for mode, fn in (("novel", novel), ("repeated", repeated)):
                for c in args.concurrency:
                    r = {"mode": mode, **asyncio.run(cell(port, c, args.duration, fn))}
                    print(json.dumps(r), flush=True)
                    cells.append(r)
        finally:
            server.terminate()
            server.wait(timeout=30)

    by = {(c["mode"], c["concurrency"]): c for c in cells}
    enc = encoder["single_query_ms_p50"]
    n1, n32 = by.get(("novel", 1)), by.get(("novel", 32))
    targets = {}
    if n1:
        targets["c1_overhead_vs_encoder"] = {"value": n1["p50_ms"] / enc - 1, "target": "<= 0.20"}
        targets["c1_p99_ms"] = {"value": n1["p99_ms"], "target": "< 50"}
    if n1 and n32:
        targets["c32_throughput_vs_c1"] = {"value": n32["rps"] / n1["rps"], "target": ">= 1.5"}
    if ("repeated", 32) in by:
        targets["repeated_rps_c32"] = {"value": by[("repeated", 32)]["rps"], "target": "> 1000"}
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": {"cpus": os.cpu_count(),
           "platform": platform.platform(), "python": platform.python_version(),
           "loadavg_at_end": os.getloadavg()},
           "served_model": served, "candidates": 16, "duration_s": args.duration,
           "encoder": encoder, "cells": cells, "targets": targets}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(targets, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
