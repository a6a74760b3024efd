"""The encoder backends side by side: speed (interleaved), sub-batch size, threads, and agreement.

1. Speed: GSM8K/SVAMP/MAWPS questions one at a time (p50 / p99) and as micro-batches of 32,
   for torch, onnx, onnx-int8 and static, interleaved round by round in one process on one
   worker thread (as the service runs it), so a shared machine's noise hits all alike.
2. Sub-batch sweep: onnx fp32 on micro-batches of 32, cut into length-sorted sub-batches of
   1, 2, 4, 8 and 32 (32 = one padded call), and torch the same way; at 1 and 2 threads.
3. Agreement (``--agreement``): every benchmark query (35,848) embedded by torch and by the
   default onnx: cosine min / mean, and the best-of-N choice among the 16 benchmark prompts of
   a GSM8K reward model (trained on the torch vectors) for every query with each encoder's
   vectors: the share of identical choices.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encoders.py --root /work/shared/data [--agreement]

Writes benchmarks/results/encoders.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from oirl.datasets.benchmark import DATASETS, PROMPTS, load_benchmark  # noqa: E402
from oirl.embed import make_embedder  # noqa: E402
from oirl.settings import get_settings  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BACKENDS = ("torch", "onnx", "onnx-int8", "static")


def all_queries(root: Path) -> dict[str, list[str]]:
    """Every benchmark query row's text per dataset (the 35,848 of the three test+train files)."""
    out = {}
    for d in DATASETS:
        logs = load_benchmark(d, root)
        out[d] = logs.drop_duplicates("query_index").sort_values("query_index")["query"].tolist()
    return out


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def speed(encoders: dict, pool: list[str], rounds: int, per_round: int) -> dict:
    """Interleaved: each round gives every encoder the same singles and the same batch of 32."""
    single = {name: [] for name in encoders}
    batch = {name: [] for name in encoders}
    for r in range(rounds):
        qs = pool[r * per_round : (r + 1) * per_round]
        b32 = pool[len(pool) - 32 * (r + 1) : len(pool) - 32 * r]
        for name, emb in encoders.items():
            single[name] += [timed(lambda q=q, emb=emb: emb.encode([q])) for q in qs]
            batch[name].append(timed(lambda emb=emb, b32=b32: emb.encode(b32)) / 32)
    out = {}
    for name in encoders:
        s = np.array(single[name]) * 1000
        out[name] = {"single_ms_p50": float(np.median(s)), "single_ms_p99": float(np.percentile(s, 99)),
                     "batch32_ms_per_query": 1000 * float(np.median(batch[name])), "n_single": len(s)}
    base = out["torch"] if "torch" in out else None
    if base:
        for name in out:
            out[name]["speedup_single_p50_vs_torch"] = base["single_ms_p50"] / out[name]["single_ms_p50"]
            out[name]["speedup_batch32_vs_torch"] = base["batch32_ms_per_query"] / out[name]["batch32_ms_per_query"]
    return out


def sub_batch_sweep(pool: list[str], rounds: int, threads: tuple[int, ...]) -> dict:
    from oirl.embed import OnnxEmbedder, SentenceTransformerEmbedder

    settings = get_settings()
    variants = {}
    for t in threads:
        for sb in (1, 2, 4, 8, 32):
            emb = OnnxEmbedder("all-MiniLM-L6-v2", "onnx", settings.resolved_encoder_dir, threads=t, sub_batch=sb)
            emb.encode(["warm up"])
            variants[f"onnx threads={t} sub_batch={sb}"] = emb
    for sb in (4, 32):
        variants[f"torch sub_batch={sb}"] = SentenceTransformerEmbedder(batch_size=sb)
        variants[f"torch sub_batch={sb}"].encode(["warm up"])
    times = {k: [] for k in variants}
    for r in range(rounds):
        b32 = pool[32 * r : 32 * (r + 1)]
        for k, emb in variants.items():
            times[k].append(timed(lambda emb=emb, b32=b32: emb.encode(b32)) / 32)
    return {k: {"ms_per_query": 1000 * float(np.median(v))} for k, v in times.items()}


def agreement(queries: dict[str, list[str]], root: Path) -> dict:
    """Cosine of onnx to torch on every query, and the served choice (calibrated policy) with each."""
    from oirl.reward import fit_reward_model
    from oirl.select import apply_policy, calibrate_policy

    flat = list(dict.fromkeys(q for qs in queries.values() for q in qs))
    torch_emb = make_embedder(get_settings(), cache=False, encoder="torch")
    onnx_emb = make_embedder(get_settings(), cache=False, encoder="onnx")
    seconds = {}
    vectors = {}
    for name, emb in (("torch", torch_emb), ("onnx", onnx_emb)):
        t0 = time.perf_counter()
        vectors[name] = emb.encode(flat)  # (n, 384)
        seconds[name] = time.perf_counter() - t0
    cos = np.sum(vectors["torch"] * vectors["onnx"], axis=1)

    prompts = [p.text for p in PROMPTS]
    p_emb = torch_emb.encode(prompts)  # (16, 384)
    row = dict(zip(flat, vectors["torch"], strict=True)) | dict(zip(prompts, p_emb, strict=True))

    class TorchVectors:  # the torch vectors by text: the model is trained once, on them
        identity = torch_emb.identity

        def encode(self, texts):
            return np.stack([row[t] for t in texts])

    logs = load_benchmark("gsm8k", root)
    train = logs[(logs["split"] == "train") & logs["prompt_index"].isin(range(6))]
    trained = fit_reward_model(train, TorchVectors())
    policy = calibrate_policy(trained)
    choices = {name: apply_policy(trained.model.score(v, p_emb), prompts, policy).choice
               for name, v in vectors.items()}
    return {"n_query_rows": sum(len(qs) for qs in queries.values()), "n_distinct_texts": len(flat),
            "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
            "share_cosine_ge_0.99999": float(np.mean(cos >= 0.99999)),
            "served_choice_identical": float(np.mean(choices["torch"] == choices["onnx"])),
            "n_choices": len(flat), "embed_seconds": seconds,
            "model": "LightGBM (defaults), GSM8K training logs of prompts 0-5, torch vectors; calibrated policy; "
                     "choice among the 16 benchmark prompts for every distinct query text"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None, help="benchmark files (default: settings)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--per-round", type=int, default=25, help="single queries per encoder per round")
    ap.add_argument("--agreement", action="store_true", help="also embed all 35,848 queries with torch and onnx")
    ap.add_argument("--out", type=Path, default=RESULTS / "encoders.json")
    args = ap.parse_args()
    root = args.root or get_settings().resolved_benchmark_dir
    queries = all_queries(root)
    pool = list(dict.fromkeys(q for qs in queries.values() for q in qs))
    np.random.default_rng(0).shuffle(pool)

    def run() -> dict:  # on a worker thread, as the service's encoder runs
        build = {}
        encoders = {}
        for name in BACKENDS:
            t0 = time.perf_counter()
            emb = make_embedder(get_settings(), cache=False, encoder=name)
            emb.encode(["warm up"])
            build[name] = time.perf_counter() - t0
            encoders[name] = emb
        out = {"load_or_build_s": build, "identity": {n: e.identity.key for n, e in encoders.items()}}
        out["speed"] = speed(encoders, pool, args.rounds, args.per_round)
        print(json.dumps(out, indent=1), flush=True)
        out["sub_batch_sweep"] = sub_batch_sweep(pool, args.rounds, threads=(1, 2))
        print(json.dumps(out["sub_batch_sweep"], indent=1), flush=True)
        if args.agreement:
            out["agreement"] = agreement(queries, root)
            print(json.dumps(out["agreement"], indent=1), flush=True)
        return out

    with ThreadPoolExecutor(max_workers=1) as ex:
        result = ex.submit(run).result()
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": {
        "cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_at_end": os.getloadavg(),
        "loadavg": os.getloadavg(), "note": "interleaved: compare ratios within this run"}, **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
