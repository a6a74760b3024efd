"""Load test of POST /v1/select on loopback, next to the bare encoder's time for the same queries.

Bounded: its own uvicorn on a free 127.0.0.1 port, a fixed duration per cell, stops by itself.
Cells: {novel, repeated} queries x concurrency {1, 8, 32}, 16 candidate prompts (the
benchmark's 16). Novel queries are real GSM8K/SVAMP questions, each sent once (no cache can
help); repeated queries cycle through 64 questions answered once beforehand (the answer cache).
Each encoder backend (``--encoders``, default torch, onnx, onnx-int8, static) gets its own
server in the same run, with a GSM8K model trained on that encoder's vectors (1,000 training
questions, as `serve --bootstrap`; torch and onnx share one, their vectors are the same), in
throwaway stores, so nothing of yours is touched. Cells are interleaved: every (mode,
concurrency) cell runs on each backend in turn, so a shared machine's load hits all alike.
Cold start (process start to /readyz 200, encoders already built) is measured per backend,
one server starting at a time.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serve.py [--duration 10] [--root BENCHMARK_DIR]

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
LOADAVG_AT_START = os.getloadavg()


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


def train_models(root: Path, home: Path, encoders: list[str]) -> dict[str, tuple[str, Path]]:
    """One GSM8K model per distinct encoder identity, trained in a throwaway store: encoder -> (label, dir)."""
    from oirl.embed import make_embedder
    from oirl.ingest import import_benchmark
    from oirl.jobs.retrain import RetrainParams, retrain
    from oirl.registry import ModelRegistry
    from oirl.settings import Settings
    from oirl.store.engine import make_engine, make_session_factory
    from oirl.store.migrate import upgrade

    url = f"sqlite:///{home / 'oirl.db'}"
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    import_benchmark(factory, root, ["gsm8k"])
    registry = ModelRegistry(factory, home / "models")
    by_identity: dict[str, tuple[str, Path]] = {}
    out = {}
    for encoder in encoders:
        emb = make_embedder(Settings(home=home, encoder=encoder))
        key = emb.identity.key
        if key not in by_identity:
            info, _ = retrain(factory, registry, emb, RetrainParams(task="gsm8k", max_queries=1000), alias=None)
            by_identity[key] = (f"v{info.id} ({info.backend}, {key}, 1,000 GSM8K training questions)",
                                Path(registry.verify(info.id).artefact_path))
        out[encoder] = by_identity[key]
    return out


def prepare_home(model_dir: Path, home: Path, task: str = "gsm8k") -> None:
    """A throwaway store serving ``model_dir`` as the task's champion, with its 16 benchmark prompts active."""
    from oirl.datasets.benchmark import PROMPTS
    from oirl.registry import ModelRegistry
    from oirl.store.engine import make_engine, make_session_factory
    from oirl.store.migrate import upgrade
    from oirl.tasks import TaskSpec, create_task

    url = f"sqlite:///{home / 'oirl.db'}"
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    create_task(factory, TaskSpec(name=task, prompts=[p.text for p in PROMPTS]))
    dst = ModelRegistry(factory, home / "models")
    v = dst.register(model_dir)
    dst.promote(v.id)


def bare_encoders(encoders: list[str], queries: list[str], rounds: int = 10, per_round: int = 30) -> dict:
    """Each encoder alone on the same queries, interleaved round by round: one at a time, and
    micro-batches of 32 (split as the encoder splits them: never one padded call).

    Measured on a worker thread, as the service runs it: on a busy machine torch's OpenMP
    threads behave very differently when called from the main thread (often much slower for
    single short inputs), and a baseline that slow would flatter the service.
    """
    from concurrent.futures import ThreadPoolExecutor

    from oirl.embed import make_embedder

    def run() -> dict:
        embs = {e: make_embedder(os.environ.get("OIRL_EMBEDDER", "all-MiniLM-L6-v2"), cache=False, encoder=e)
                for e in encoders}
        for emb in embs.values():
            emb.encode(["warm up"])
        single = {e: [] for e in encoders}
        batch = {e: [] for e in encoders}
        for r in range(rounds):
            qs = queries[r * per_round : (r + 1) * per_round]
            b32 = queries[rounds * per_round + 32 * r : rounds * per_round + 32 * (r + 1)]
            for e, emb in embs.items():
                for q in qs:
                    t = time.perf_counter()
                    emb.encode([q])
                    single[e].append(time.perf_counter() - t)
                t = time.perf_counter()
                emb.encode(b32)
                batch[e].append((time.perf_counter() - t) / 32)
        return {e: {"single_query_ms_p50": 1000 * float(np.median(single[e])),
                    "single_query_ms_mean": 1000 * float(np.mean(single[e])),
                    "single_query_ms_p99": 1000 * float(np.percentile(single[e], 99)),
                    "batch32_ms_per_query": 1000 * float(np.median(batch[e])), "n_single": len(single[e])}
                for e in encoders}

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


def start_server(home: Path, encoder: str, encoder_dir: Path) -> tuple[subprocess.Popen, int, float]:
    """A uvicorn worker serving ``home`` with ``encoder``; returns it, its port and seconds to /readyz 200."""
    import httpx

    port = free_port()
    env = {**os.environ, "OIRL_HOME": str(home), "OIRL_DATABASE_URL": f"sqlite:///{home / 'oirl.db'}",
           "OIRL_RUN_JOBS": "false", "HF_HUB_OFFLINE": "1", "OIRL_ENCODER": encoder,
           "OIRL_ENCODER_DIR": str(encoder_dir)}
    env.pop("OIRL_ARTEFACT_DIR", None)
    t0 = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
                               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                               "--no-access-log"], env=env, cwd=Path(__file__).resolve().parent.parent)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return server, port, time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.terminate()
    sys.exit(f"the {encoder} service did not become ready in 180 s")


def targets_for(by: dict, bare: dict, encoder: str) -> dict:
    """The issue's targets, relative to the torch server measured in the same run."""
    out = {}
    n1, n32 = by.get((encoder, "novel", 1)), by.get((encoder, "novel", 32))
    t1, t32 = by.get(("torch", "novel", 1)), by.get(("torch", "novel", 32))
    if n1:
        out["c1_p50_ms"], out["c1_p99_ms"] = n1["p50_ms"], n1["p99_ms"]
        out["c1_overhead_vs_bare_encoder"] = n1["p50_ms"] / bare[encoder]["single_query_ms_p50"] - 1
    if n1 and t1:
        out["c1_p50_vs_torch"] = n1["p50_ms"] / t1["p50_ms"]
    if n32:
        out["novel_rps_c32"] = n32["rps"]
    if n32 and t32:
        out["novel_c32_throughput_vs_torch"] = n32["rps"] / t32["rps"]
    if (encoder, "repeated", 32) in by:
        out["repeated_rps_c32"] = by[(encoder, "repeated", 32)]["rps"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per cell")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--encoders", default="torch,onnx,onnx-int8,static", help="backends, each its own server")
    ap.add_argument("--root", type=Path, default=None, help="benchmark files (default: settings)")
    ap.add_argument("--out", type=Path, default=RESULTS / "serve.json")
    args = ap.parse_args()

    import httpx

    from oirl.settings import get_settings

    settings = get_settings()
    if args.root:
        settings = settings.model_copy(update={"benchmark_dir": args.root})
    encoders = args.encoders.split(",")
    pool = questions(settings)
    rng = np.random.default_rng(0)
    rng.shuffle(pool)
    print(f"{len(pool):,} distinct benchmark questions; measuring the bare encoders ...", flush=True)
    bare = bare_encoders(encoders, pool)
    print(json.dumps(bare), flush=True)

    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    cold: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="oirl-bench-") as tmp:
        tmp = Path(tmp)
        models = train_models(settings.resolved_benchmark_dir, tmp / "source", encoders)
        try:
            for e in encoders:  # one at a time: cold start is each server's own
                home = tmp / e
                home.mkdir()
                prepare_home(models[e][1], home)
                server, port, cold[e] = start_server(home, e, settings.resolved_encoder_dir)
                servers[e] = (server, port)
                print(f"{e}: ready in {cold[e]:.2f} s", flush=True)
            for e, (_, port) in servers.items():
                cands = httpx.post(f"http://127.0.0.1:{port}/v1/select", json={"query": "warm"}).json()["ranking"]
                assert len(cands) == 16, (e, len(cands))
                for q in pool[:64]:  # answer each once: from now on they are cache hits
                    httpx.post(f"http://127.0.0.1:{port}/v1/select", json={"query": q})

            fresh = pool[64 + 600:]  # past the bare encoders' sample
            cursors = {e: [0] for e in encoders}

            def novel_for(e):
                def novel() -> str:  # every server sees the same new questions, each once
                    i = cursors[e][0] = cursors[e][0] + 1
                    return fresh[i] if i < len(fresh) else f"{fresh[i % len(fresh)]} (variant {i})"
                return novel

            def repeated_for(e):
                rep = [0]

                def repeated() -> str:
                    rep[0] += 1
                    return pool[rep[0] % 64]
                return repeated

            cells = []
            for mode, make in (("novel", novel_for), ("repeated", repeated_for)):
                for c in args.concurrency:
                    for e, (_, port) in servers.items():
                        r = {"encoder": e, "mode": mode, **asyncio.run(cell(port, c, args.duration, make(e)))}
                        print(json.dumps(r), flush=True)
                        cells.append(r)
        finally:
            for server, _ in servers.values():
                server.terminate()
                server.wait(timeout=30)

    by = {(c["encoder"], c["mode"], c["concurrency"]): c for c in cells}
    targets = {e: targets_for(by, bare, e) for e in encoders}
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": {"cpus": os.cpu_count(),
           "platform": platform.platform(), "python": platform.python_version(),
           "loadavg_at_end": os.getloadavg(), "loadavg_at_start": LOADAVG_AT_START,
           "note": "cells interleaved across backends: compare ratios within this run"},
           "served_models": {e: m[0] for e, m in models.items()}, "candidates": 16, "duration_s": args.duration,
           "cold_start_to_ready_s": cold, "encoder": bare, "cells": cells, "targets": targets}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({"cold_start_to_ready_s": cold, "targets": targets}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
