"""Scale-out: a FACTOR-times version of a task's benchmark logs, embedded and trained in one process and
on a Dask LocalCluster, with wall times, peak memory and the held-out accuracy of both models.

The FACTOR-times logs: every training observation (paper train split, prompts 0-5) is repeated FACTOR times;
copy 0 keeps the question, copy r > 0 gets a seeded perturbation of it (a filler word, a prefix, a number
written as a decimal), drawn per (question row, copy) until the text is new, so all FACTOR copies of a
question are distinct texts with the same logged outcomes under its six prompts.

(a) one process: the default encoder (ONNX MiniLM) with the process's threads = WORKERS x THREADS, a fresh
    cache (so every distinct text is embedded once), then ``fit_reward_model`` (LightGBM, concat+knn).
(b) a ``distributed.LocalCluster`` of WORKERS processes x THREADS: ``ClusterEmbedder`` (fresh cache) and
    ``fit_reward_model(..., client=client)`` - the code ``oirl train --dask`` runs.

Both models are scored the paper's way on the task's paper test questions (argmax over prompts 0-5, the
logged correctness of the chosen prompt). Peak RSS is sampled every 0.2 s with psutil, per worker process
and for this (client) process. The figures are for this machine and its load average, which is recorded.

    HF_HUB_OFFLINE=1 nice .venv/bin/python benchmarks/scale.py --root ../shared/data --task mawps --factor 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP threads must sleep when idle (quality.py: spinning made training ~10x slower on a shared machine);
# set before LightGBM loads here, and inherited by the cluster's worker processes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402

from oirl.datasets.benchmark import load_benchmark  # noqa: E402
from oirl.embed import CachedEmbedder, EmbeddingCache, make_embedder  # noqa: E402
from oirl.evaluate import chosen_outcomes, outcome_matrix, split_logs  # noqa: E402
from oirl.reward import fit_reward_model  # noqa: E402
from oirl.select import best_of_n  # noqa: E402
from oirl.settings import get_settings  # noqa: E402

RESULTS = Path(__file__).parent / "results"
FILLERS = ("now", "please", "here", "then", "exactly", "today", "also", "just", "so", "still")
PREFIXES = ("Question:", "Q:", "Problem:", "Solve:", "Task:", "Puzzle:", "Exercise:", "Quiz:")
NUMBER = re.compile(r"\b\d+\b")
TRAIN_PROMPTS = list(range(6))


def perturb(text: str, rng: np.random.Generator) -> str:
    """One or two small edits that keep the question's meaning."""
    words = text.split(" ")
    for _ in range(rng.integers(1, 3)):
        kind = rng.integers(0, 3)
        if kind == 0:
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(FILLERS)))
        elif kind == 1:
            words.insert(0, str(rng.choice(PREFIXES)))
        else:
            spots = [i for i, w in enumerate(words) if NUMBER.fullmatch(w.strip(".,?!"))]
            if spots:
                i = int(rng.choice(spots))
                words[i] = NUMBER.sub(lambda m: f"{m.group(0)}.0", words[i], count=1)
            else:
                words.append(str(rng.choice(FILLERS)))
    return " ".join(words)


def replicate(train: pd.DataFrame, factor: int, seed: int) -> pd.DataFrame:
    """Copy 0 as logged; copy r > 0 of each question row gets its own new text (the same for its six prompts)."""
    rows = train.drop_duplicates("query_index")[["query_index", "query"]]
    seen = set(train["query"])
    copies = [train]
    for r in range(1, factor):
        new_text = {}
        for qi, text in zip(rows["query_index"], rows["query"], strict=True):
            rng = np.random.default_rng([seed, int(qi), r])
            candidate = perturb(text, rng)
            while candidate in seen:
                candidate = perturb(candidate, rng)
            seen.add(candidate)
            new_text[qi] = candidate
        copies.append(train.assign(query=train["query_index"].map(new_text)))
    return pd.concat(copies, ignore_index=True)


def paper_accuracy(model, logs: pd.DataFrame, embedder) -> float:
    """Argmax over prompts 0-5 on the paper test questions; the logged correctness of the chosen prompt."""
    split = split_logs(logs, "paper", TRAIN_PROMPTS)
    outcomes = outcome_matrix(logs, split.test_queries, TRAIN_PROMPTS)
    texts = logs.drop_duplicates("query_index").set_index("query_index").loc[split.test_queries, "query"]
    prompts = logs.drop_duplicates("prompt_index").set_index("prompt_index").loc[TRAIN_PROMPTS, "prompt"]
    scores = model.score(embedder.encode(texts.tolist()), embedder.encode(prompts.tolist()))
    return float(chosen_outcomes(outcomes, best_of_n(scores, prompts.tolist()).choice).mean())


class PeakRSS:
    """Samples the resident memory of some processes in a background thread; ``peaks`` in MiB."""

    def __init__(self, pids: dict[str, int], every: float = 0.2):
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peaks = dict.fromkeys(pids, 0.0)
        self.every, self._stop = every, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, proc in self.procs.items():
                try:
                    self.peaks[name] = max(self.peaks[name], proc.memory_info().rss / 2**20)
                except psutil.NoSuchProcess:
                    pass
            self._stop.wait(self.every)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run(mode: str, texts: list[str], big: pd.DataFrame, logs: pd.DataFrame, embedder, client, args,
        pids: dict[str, int]) -> tuple[dict, np.ndarray]:
    """Embed the distinct texts (timed), train on the big logs (timed, reading the now-warm cache), score."""
    result: dict = {"mode": mode, "loadavg_at_start": os.getloadavg()}
    with PeakRSS(pids) as rss:
        t0 = time.perf_counter()
        vectors = embedder.encode(texts)
        result["embed_seconds"] = round(time.perf_counter() - t0, 1)
        result["embed_texts_per_second"] = round(len(texts) / (time.perf_counter() - t0), 1)
        print(f"[{mode}] embedded {len(texts):,} texts in {result['embed_seconds']} s", flush=True)
        t0 = time.perf_counter()
        trained = fit_reward_model(big, embedder, backend=args.backend, features=args.features,
                                   random_state=args.seed, client=client)
        result["train_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"[{mode}] trained in {result['train_seconds']} s ({trained.model.n_rounds_} rounds)", flush=True)
    result["peak_rss_mib"] = {name: round(v) for name, v in rss.peaks.items()}
    result["train_seconds_breakdown"] = {k: round(v, 1) for k, v in trained.model.fit_seconds_.items()}
    result["rounds"] = int(trained.model.n_rounds_)
    result["validation_log_loss"] = trained.model.validation_log_loss_
    result["training_rows"] = trained.model.training_summary_["n_rows"]
    result["paper_test_accuracy_argmax"] = paper_accuracy(trained.model, logs, embedder)
    print(f"[{mode}] accuracy {result['paper_test_accuracy_argmax']:.4f}", flush=True)
    if args.extra_seeds:  # the seed-to-seed spread: what a difference between (a) and (b) is to be compared with
        result["accuracy_by_seed"] = {args.seed: result["paper_test_accuracy_argmax"]}
        for seed in range(args.seed + 1, args.seed + 1 + args.extra_seeds):
            again = fit_reward_model(big, embedder, backend=args.backend, features=args.features,
                                     random_state=seed, client=client)
            result["accuracy_by_seed"][seed] = paper_accuracy(again.model, logs, embedder)
            print(f"[{mode}] seed {seed}: accuracy {result['accuracy_by_seed'][seed]:.4f}", flush=True)
        result["mean_accuracy_over_seeds"] = float(np.mean(list(result["accuracy_by_seed"].values())))
    result["loadavg_at_end"] = os.getloadavg()
    return result, vectors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None, help="benchmark files (default: settings)")
    ap.add_argument("--task", default="mawps", choices=("gsm8k", "svamp", "mawps"))
    ap.add_argument("--factor", type=int, default=10, help="copies of every training observation")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    ap.add_argument("--threads-per-worker", type=int, default=1)
    ap.add_argument("--backend", default="lightgbm", choices=("lightgbm", "xgboost"))
    ap.add_argument("--features", default="concat+knn")
    ap.add_argument("--seed", type=int, default=0, help="seeds the perturbations, the validation split, the trees")
    ap.add_argument("--extra-seeds", type=int, default=0,
                    help="also train with the next N seeds (same embeddings, untimed) and report every accuracy")
    ap.add_argument("--modes", default="local,cluster", help="which of local,cluster to run, in this order")
    ap.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = ap.parse_args()
    settings = get_settings()
    root = args.root or settings.resolved_benchmark_dir

    logs = load_benchmark(args.task, root)
    train = logs[(logs["split"] == "train") & logs["prompt_index"].isin(TRAIN_PROMPTS)]
    big = replicate(train, args.factor, args.seed)
    test_texts = logs.loc[logs["split"] == "test", "query"].unique().tolist()
    texts = list(dict.fromkeys(big["query"].tolist() + big["prompt"].tolist() + test_texts))
    print(f"{args.task} x{args.factor}: {len(big):,} observations, {len(texts):,} distinct texts", flush=True)
    threads = args.workers * args.threads_per_worker
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": "benchmarks/scale.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("root", "out")),
        "task": args.task, "factor": args.factor, "backend": args.backend, "features": args.features,
        "observations": int(len(big)), "original_observations": int(len(train)), "distinct_texts": len(texts),
        "distinct_training_queries": int(big["query"].nunique()), "encoder": settings.encoder,
        "embedder": settings.embedder, "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(), "one_process_threads": threads,
        "cluster": {"workers": args.workers, "threads_per_worker": args.threads_per_worker},
        "versions": {m: __import__(m).__version__ for m in ("dask", "distributed", "lightgbm", "xgboost",
                                                            "onnxruntime", "numpy")},
        "runs": {},
    }
    vectors = {}
    with tempfile.TemporaryDirectory(prefix="oirl-scale-") as tmp:
        for mode in args.modes.split(","):
            cache = EmbeddingCache(Path(tmp) / f"{mode}.sqlite3")  # fresh: every distinct text is embedded
            if mode == "local":
                inner = make_embedder(settings, cache=False, threads=threads, progress=False)
                t0 = time.perf_counter()
                inner.encode(["warm up"])
                warm = time.perf_counter() - t0
                run_result, vectors[mode] = run(mode, texts, big, logs, CachedEmbedder(inner, cache), None, args,
                                                {"process": os.getpid()})
            else:
                from distributed import Client, LocalCluster

                from oirl.distributed import ClusterEmbedder, EmbedderSpec

                with LocalCluster(n_workers=args.workers, threads_per_worker=args.threads_per_worker,
                                  processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
                    embedder = ClusterEmbedder(client, EmbedderSpec.from_settings(settings), cache)
                    t0 = time.perf_counter()
                    embedder.warm()
                    warm = time.perf_counter() - t0
                    pids = {"client": os.getpid(), **{f"worker {i}": pid for i, pid in enumerate(
                        client.run(os.getpid).values())}}
                    run_result, vectors[mode] = run(mode, texts, big, logs, embedder, client, args, pids)
            run_result["encoder_load_seconds"] = round(warm, 2)
            result["runs"][mode] = run_result
            write(args.out, result)  # after each mode: a long run stopped midway keeps what it measured
    if {"local", "cluster"} <= set(vectors):
        a, b = result["runs"]["local"], result["runs"]["cluster"]
        result["comparison"] = {
            "accuracy_difference": b["paper_test_accuracy_argmax"] - a["paper_test_accuracy_argmax"],
            "within_0.005": abs(b["paper_test_accuracy_argmax"] - a["paper_test_accuracy_argmax"]) <= 0.005,
            "max_abs_vector_difference": float(np.abs(vectors["local"] - vectors["cluster"]).max()),
            "min_cosine_local_vs_cluster": float((vectors["local"] * vectors["cluster"]).sum(axis=1).min()),
            "embed_speedup": a["embed_seconds"] / b["embed_seconds"],
            "train_speedup": a["train_seconds"] / b["train_seconds"],
        }
        if args.extra_seeds:
            result["comparison"]["mean_accuracy_difference_over_seeds"] = (
                b["mean_accuracy_over_seeds"] - a["mean_accuracy_over_seeds"])
    result["loadavg_at_end"] = os.getloadavg()
    write(args.out, result)
    print(json.dumps(result, indent=2))


def write(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
