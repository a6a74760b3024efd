"""Replicas: N `oirl serve` processes on one PostgreSQL database and one artefact directory.

What it measures, in one run:
1. Throughput and p50/p99 of POST /v1/select with novel GSM8K/SVAMP/MAWPS questions (each sent
   once: no cache helps) at the same total concurrency against 1 process and against N processes,
   in alternating rounds so a shared machine's load hits both alike. The load generator spreads
   connections round-robin over the replicas on the client side (connection i -> replica i mod N;
   each is keep-alive, so requests split evenly), standing in for a Service or load balancer.
   In the 1-process cells the other replicas are up but idle (they only poll the alias).
2. Promotions during load on all N: each promotion goes through one replica's admin API
   (a different one each time) while every connection keeps sending. It counts failed requests
   (any non-200 or connection error) and, per replica, the time from the promote call's return
   to the first response carrying the new X-Model-Version (the champion poll is 1 s by default;
   the figure includes that response's own wait in the replica's queue), and, bracketing the swap
   itself without the queueing, the last request sent that still got the old version and the
   first sent that got the new one.
   The replica that took the call swaps before it answers, so its times can be negative.

The servers are real: the bundled MiniLM through the default encoder (ONNX), a LightGBM model on
1,000 GSM8K training questions (as `serve --bootstrap`, trained by benchmarks/serve.py's helper),
the 16 benchmark prompts as candidates, a scratch PostgreSQL database created and dropped here.
N processes on this machine share its cores: where N exceeds the cores, throughput cannot
scale, and the JSON records the CPU count and load average so the figures are read that way.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/replicas.py --root ../shared/data \\
        [--replicas 3] [--concurrency 12] [--duration 10] [--rounds 6] [--promotions 3] \\
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Writes benchmarks/results/replicas.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import free_port, questions, train_models  # noqa: E402  (the same helpers as the single-server benchmark)

from oirl.store.engine import scratch_database  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TOKEN = "bench-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOADAVG_AT_START = os.getloadavg()


def prepare_store(url: str, artefacts: Path, model_dir: Path, extra_versions: int) -> list[int]:
    """Task gsm8k with its 16 prompts, ``model_dir`` as champion, and more versions of the same
    bundle to promote later (same bytes, new numbers: each promotion loads a model as a new one would)."""
    from oirl.datasets.benchmark import PROMPTS
    from oirl.registry import ModelRegistry
    from oirl.store.engine import make_engine, make_session_factory
    from oirl.store.migrate import upgrade
    from oirl.tasks import TaskSpec, create_task

    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    create_task(factory, TaskSpec(name="gsm8k", prompts=[p.text for p in PROMPTS]))
    registry = ModelRegistry(factory, artefacts)
    versions = [registry.register(model_dir).id for _ in range(1 + extra_versions)]
    registry.promote(versions[0])
    engine.dispose()
    return versions


@contextmanager
def replica(n: int, url: str, artefacts: Path, home: Path, encoder_dir: Path):
    """`oirl serve` configured as a pod is (OIRL_* only): own data home, shared store and artefacts."""
    port = free_port()
    env = {**os.environ, "OIRL_DATABASE_URL": url, "OIRL_ARTEFACT_DIR": str(artefacts),
           "OIRL_HOME": str(home / f"replica-{n}"), "OIRL_ENCODER_DIR": str(encoder_dir),
           "OIRL_ADMIN_TOKEN": TOKEN, "OIRL_WORKERS": "1"}
    log = (home / f"replica-{n}.log").open("w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "oirl.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield port, proc, t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_ready(port: int, proc: subprocess.Popen, t0: float, timeout: float = 300) -> float:
    """Seconds from the process's start to /readyz 200 (migration, encoder, champion loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    sys.exit(f"replica on port {port} not ready (exit code {proc.poll()}); see its log")


async def connection(port: int, replica_no: int, next_query, stop_at: float, out: list) -> None:
    """Keep-alive HTTP/1.1 requests back to back; records (sent, received, replica, status, version)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        out.append((time.perf_counter(), time.perf_counter(), replica_no, f"connect: {exc}", None))
        return
    try:
        while time.perf_counter() < stop_at:
            body = json.dumps({"query": next_query()}).encode()
            req = (b"POST /v1/select HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            sent = time.perf_counter()
            try:
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
            except (OSError, asyncio.IncompleteReadError) as exc:  # a dropped connection is a failed request
                out.append((sent, time.perf_counter(), replica_no, f"{type(exc).__name__}", None))
                return
            length, version = 0, None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
                elif name.lower() == b"x-model-version":
                    version = int(value)
            await reader.readexactly(length)
            status = head.split(b" ", 2)[1].decode()
            out.append((sent, time.perf_counter(), replica_no, status, version))
    finally:
        writer.close()


async def load(ports: list[int], concurrency: int, seconds: float, next_query, during=None) -> list:
    """``concurrency`` connections spread round-robin over ``ports`` for ``seconds``; ``during`` (a
    coroutine function) runs alongside, e.g. a promotion."""
    out: list = []
    stop_at = time.perf_counter() + seconds
    tasks = [connection(ports[i % len(ports)], i % len(ports), next_query, stop_at, out) for i in range(concurrency)]
    if during is not None:
        tasks.append(during())
    await asyncio.gather(*tasks)
    return out


def summarise(records: list, seconds: float) -> dict:
    ok = [r for r in records if r[3] == "200"]
    ms = np.array([(r[1] - r[0]) * 1000 for r in ok]) if ok else np.array([np.nan])
    failed = [r for r in records if r[3] != "200"]
    return {"requests": len(records), "failed": len(failed), "seconds": seconds, "rps": len(ok) / seconds,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "first_failures": [r[3] for r in failed[:3]]}


def promotion_round(ports: list[int], concurrency: int, seconds: float, next_query, version: int, via: int) -> dict:
    """Load on all replicas; after a third of the time, promote ``version`` through replica ``via``."""
    returned: dict[str, float] = {}

    async def promote() -> None:
        await asyncio.sleep(seconds / 3)
        async with httpx.AsyncClient(timeout=60) as c:
            r = await c.post(f"http://127.0.0.1:{ports[via]}/admin/models/{version}/promote",
                             json={"force": True, "reason": "benchmark"}, headers=AUTH)
        returned["at"] = time.perf_counter()
        returned["status"] = r.status_code

    records = asyncio.run(load(ports, concurrency, seconds, next_query, during=promote))
    assert returned.get("status") == 200, f"promotion answered {returned}"
    swap_s, last_old_sent, first_new_sent, stale_after_swap = {}, {}, {}, {}
    for n in range(len(ports)):
        mine = sorted((r for r in records if r[2] == n and r[3] == "200"), key=lambda r: r[1])
        first_new = next((r for r in mine if r[4] == version), None)
        swap_s[n] = None if first_new is None else first_new[1] - returned["at"]
        # The first new answer also waits its turn in the replica's queue (about p50 under this
        # load); the last request *sent* that still got the old model brackets the swap itself.
        old_sent = [r[0] for r in mine if r[4] != version]
        last_old_sent[n] = max(old_sent) - returned["at"] if old_sent else None
        new_sent = [r[0] for r in mine if r[4] == version]
        first_new_sent[n] = min(new_sent) - returned["at"] if new_sent else None
        # Old answers to requests *sent* after this replica's first new one would mean a swap back.
        stale_after_swap[n] = 0 if first_new is None else sum(
            1 for r in mine if r[0] > first_new[1] and r[4] != version)
    return {"version": version, "via_replica": via, **summarise(records, seconds),
            "seconds_to_new_version": swap_s, "last_old_version_request_sent_s": last_old_sent,
            "first_new_version_request_sent_s": first_new_sent,
            "old_version_after_swap": stale_after_swap}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=12, help="total open connections (both cell kinds)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per throughput cell")
    ap.add_argument("--rounds", type=int, default=6, help="alternating (1 process, N processes) rounds")
    ap.add_argument("--promotions", type=int, default=3, help="promotions under load, each through the next replica")
    ap.add_argument("--promotion-seconds", type=float, default=9.0, help="load per promotion round")
    ap.add_argument("--root", type=Path, default=None, help="benchmark files (default: settings)")
    ap.add_argument("--database-url", default=os.environ.get("OIRL_BENCH_DATABASE_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/postgres"),
                    help="a PostgreSQL server (any database on it): a scratch database is created and dropped")
    ap.add_argument("--out", type=Path, default=RESULTS / "replicas.json")
    args = ap.parse_args()

    from oirl.settings import get_settings

    settings = get_settings()
    if args.root:
        settings = settings.model_copy(update={"benchmark_dir": args.root})
    pool = questions(settings)
    np.random.default_rng(0).shuffle(pool)
    cursor = [0]

    def novel() -> str:  # every question once across the whole run: no answer or embedding cache helps
        cursor[0] += 1
        i = cursor[0]
        return pool[i] if i < len(pool) else f"{pool[i % len(pool)]} (variant {i})"

    with (tempfile.TemporaryDirectory(prefix="oirl-replicas-") as tmp,
          scratch_database(args.database_url, "oirl_replicas_bench") as url):
        tmp = Path(tmp)
        print("training the served model (1,000 GSM8K questions) ...", flush=True)
        label, model_dir = train_models(settings.resolved_benchmark_dir, tmp / "source", ["onnx"])["onnx"]
        versions = prepare_store(url, tmp / "artefacts", model_dir, args.promotions)
        with ExitStack() as stack:
            started = [stack.enter_context(replica(n, url, tmp / "artefacts", tmp, settings.resolved_encoder_dir))
                       for n in range(args.replicas)]  # all at once, as a Deployment's pods start
            ready_s = [wait_ready(*r) for r in started]
            ports = [port for port, _, _ in started]
            print(f"{args.replicas} replicas ready after {[round(s, 1) for s in ready_s]} s", flush=True)
            for port in ports:  # first requests pay one-off costs (prompt embeddings): not part of a cell
                for _ in range(3):
                    assert httpx.post(f"http://127.0.0.1:{port}/v1/select", json={"query": novel()},
                                      timeout=60).status_code == 200

            cells = []
            for r in range(args.rounds):
                for n in (1, args.replicas) if r % 2 == 0 else (args.replicas, 1):
                    records = asyncio.run(load(ports[:n], args.concurrency, args.duration, novel))
                    cell = {"round": r, "processes": n, "concurrency": args.concurrency,
                            **summarise(records, args.duration), "loadavg_1min_after": os.getloadavg()[0]}
                    print(json.dumps(cell), flush=True)
                    cells.append(cell)

            promotions = []
            for k, version in enumerate(versions[1:]):
                p = promotion_round(ports, args.concurrency, args.promotion_seconds, novel, version,
                                    via=k % args.replicas)
                print(json.dumps(p), flush=True)
                promotions.append(p)

    def median_of(n: int, key: str) -> float:
        return float(np.median([c[key] for c in cells if c["processes"] == n]))

    swaps = [s for p in promotions for s in p["seconds_to_new_version"].values()]

    def worst(key: str) -> float | None:
        return max((s for p in promotions for s in p[key].values() if s is not None), default=None)

    # Each round's two cells ran back to back: their ratio is less exposed to the machine's other
    # load than the ratio of medians, which pairs cells minutes apart.
    by_round = {(c["round"], c["processes"]): c["rps"] for c in cells}
    round_ratios = [by_round[r, args.replicas] / by_round[r, 1] for r in range(args.rounds)]
    summary = {
        "throughput_ratio_per_round": round_ratios,
        "throughput_ratio_median_of_rounds": float(np.median(round_ratios)),
        "rps_1_process": median_of(1, "rps"), f"rps_{args.replicas}_processes": median_of(args.replicas, "rps"),
        "throughput_ratio_of_medians": median_of(args.replicas, "rps") / median_of(1, "rps"),
        "p50_ms_1_process": median_of(1, "p50_ms"), f"p50_ms_{args.replicas}_processes": median_of(args.replicas,
                                                                                                     "p50_ms"),
        "p99_ms_1_process": median_of(1, "p99_ms"), f"p99_ms_{args.replicas}_processes": median_of(args.replicas,
                                                                                                     "p99_ms"),
        "failed_requests_during_promotions": sum(p["failed"] for p in promotions),
        "requests_during_promotions": sum(p["requests"] for p in promotions),
        "max_seconds_to_new_version": None if None in swaps else max(swaps),
        # The swap happened between these two (per replica): the last request sent that got the old
        # model and the first sent that got the new one. Their maximum over replicas and promotions:
        "max_last_old_version_request_sent_s": worst("last_old_version_request_sent_s"),
        "max_first_new_version_request_sent_s": worst("first_new_version_request_sent_s"),
        "every_replica_within_2s": None not in swaps and max(swaps) <= 2.0,
        "old_version_after_swap": sum(sum(p["old_version_after_swap"].values()) for p in promotions),
    }
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                       "loadavg_at_start": LOADAVG_AT_START, "loadavg_at_end": os.getloadavg(),
                       "note": f"{args.replicas} processes and the load generator share {os.cpu_count()} cores: "
                               "throughput cannot scale past the cores; compare within this run"},
           "setup": {"replicas": args.replicas, "store": "PostgreSQL (one scratch database)",
                     "artefacts": "one shared directory", "encoder": "onnx (bundled MiniLM)", "served_model": label,
                     "candidates": 16, "workers_per_process": 1,
                     "champion_poll_seconds": settings.champion_poll_seconds,
                     "balancing": "client side, round-robin over keep-alive connections",
                     "queries": "novel benchmark questions, each sent once"},
           "ready_after_start_s": ready_s, "summary": summary, "cells": cells, "promotions": promotions}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
