"""A small team's own logs, where the truth is known: does the served policy find the per-kind best prompt?

Each task mixes real texts of several kinds (GSM8K questions, SVAMP and MAWPS word problems, the first
human turn of hh-rlhf conversations, all from ../shared/data) and a table P(correct | kind, prompt).
Logs are production-shaped: one prompt per query drawn by a logging policy (uniform, or ε-greedy
around one prompt) with its propensity, 20% of queries tried twice, a Bernoulli outcome from the
table. Test queries are texts never logged; a policy's value is its exact expected accuracy under
the table, so no test sampling noise enters. Reported per run: the served (safe) policy, the model's
own argmax, the best single prompt (the truth's, not BoTr's), and the per-kind oracle, with

    captured = (value − best single) / (per-kind oracle − best single)

Paths: ``library`` imports the logs and trains through the same functions as ``oirl data import``
and ``oirl train`` (``import_user_file``, ``retrain``) and chooses with ``apply_policy``; ``readme``
runs the README's commands as subprocesses (import, train, promote, serve) and asks the live
server's ``/v1/select/batch``.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/synthetic_tasks.py --root ../shared/data \
        --settings strong-1000-uniform strong-300-uniform strong-3000-egreedy none-1000-uniform --seeds 0 1 2

Writes benchmarks/results/synthetic_tasks.json and .md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PROMPTS = ["Answer in one short sentence: ", "Think it through step by step, then answer: ",
           "Reply politely and refer to our policy: ", "Ask one clarifying question first: "]
# P(correct | kind, prompt). Rows: kinds; columns: PROMPTS. "strong": each kind has its own best prompt;
# "strong-b": another assignment and gaps; "none": prompts differ, but the same way for every kind, so the
# best single prompt is the per-kind oracle (and BoTr's own estimation error shows); "flat": no prompt
# matters at all.
TABLES = {
    "strong": {"gsm8k": [0.30, 0.85, 0.25, 0.45], "svamp": [0.85, 0.45, 0.30, 0.25],
               "hh": [0.25, 0.30, 0.85, 0.50]},
    "strong-b": {"gsm8k": [0.40, 0.75, 0.35, 0.30], "mawps": [0.35, 0.40, 0.30, 0.80],
                 "hh": [0.70, 0.30, 0.45, 0.35]},
    "none": {"gsm8k": [0.30, 0.35, 0.28, 0.32], "svamp": [0.60, 0.65, 0.58, 0.62], "hh": [0.45, 0.50, 0.43, 0.47]},
    "flat": {"gsm8k": [0.35] * 4, "svamp": [0.60] * 4, "hh": [0.50] * 4},
}
WEAK_PROMPT = 3  # ε-greedy logs favour this prompt (the best for no kind in "strong")


def kind_texts(root: Path, kind: str) -> list[str]:
    """Distinct real texts of one kind, in a fixed order."""
    from oirl.datasets.benchmark import load_queries

    if kind == "hh":  # the first human turn of each conversation
        with gzip.open(root / "hh-rlhf/harmless-base/test.jsonl.gz", "rt") as fh:
            texts = [json.loads(line)["chosen"].split("\n\nAssistant:")[0].replace("Human:", "").strip()
                     for line in fh]
    else:
        texts = load_queries(kind, root)
    return sorted({t for t in texts if 20 <= len(t) <= 2000})


@dataclass
class Task:
    table: np.ndarray  # (n_kinds, n_prompts)
    logs: pd.DataFrame  # query, prompt, correct, propensity, llm
    test_queries: list[str]
    test_kind: np.ndarray  # (n_test,)

    def value(self, choice: np.ndarray) -> float:
        return float(self.table[self.test_kind, choice].mean())

    def reference(self) -> dict:
        best_single = max(self.value(np.full(len(self.test_kind), j)) for j in range(self.table.shape[1]))
        return {"best_single": best_single, "oracle": self.value(self.table[self.test_kind].argmax(axis=1))}


def make_task(texts: dict[str, list[str]], table_name: str, n_rows: int, logging: str, seed: int,
              n_test_per_kind: int = 200, repeat_share: float = 0.2, epsilon: float = 0.2) -> Task:
    rng = np.random.default_rng(seed)
    kinds = list(TABLES[table_name])
    table = np.array([TABLES[table_name][k] for k in kinds])
    n_queries = int(round(n_rows / (1 + repeat_share)))
    pool, test_q, test_k = [], [], []
    for k, kind in enumerate(kinds):
        order = rng.permutation(len(texts[kind]))
        test_q += [texts[kind][i] for i in order[:n_test_per_kind]]
        test_k += [k] * n_test_per_kind
        pool += [(texts[kind][i], k) for i in order[n_test_per_kind:]]
    picked = [pool[i] for i in rng.permutation(len(pool))[:n_queries]]
    n_p = table.shape[1]
    mu = np.full(n_p, 1 / n_p) if logging == "uniform" else np.full(n_p, epsilon / n_p)
    if logging != "uniform":
        mu[WEAK_PROMPT] += 1 - epsilon
    rows = []
    for text, k in picked:
        for _ in range(1 + (rng.random() < repeat_share)):
            j = int(rng.choice(n_p, p=mu))
            rows.append({"query": text, "prompt": PROMPTS[j], "correct": int(rng.random() < table[k, j]),
                         "propensity": float(mu[j]), "llm": "support-llm"})
    return Task(table, pd.DataFrame(rows).iloc[:n_rows], test_q, np.array(test_k))


# ---------------------------------------------------------------------------------------------- paths
def run_library(task: Task, workdir: Path, embedder, train_params: dict) -> dict:
    """The functions behind ``oirl data import`` and ``oirl train``, on a fresh SQLite store."""
    from oirl.ingest import import_user_file
    from oirl.jobs import RetrainParams, retrain
    from oirl.registry import ModelRegistry
    from oirl.registry.bundle import load_bundle
    from oirl.select import apply_policy
    from oirl.store.engine import make_engine, make_session_factory
    from oirl.store.migrate import upgrade

    url = f"sqlite:///{workdir}/store.db"
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    task.logs.to_csv(workdir / "logs.csv", index=False)
    result, report = import_user_file(factory, workdir / "logs.csv", task="support")
    assert result is not None, report.problems[:3]
    registry = ModelRegistry(factory, workdir / "artefacts")
    info, metrics = retrain(factory, registry, embedder, RetrainParams(task="support", **train_params))
    bundle = load_bundle(registry.local_dir(info))
    scores = bundle.model.score(embedder.encode(task.test_queries), embedder.encode(PROMPTS))
    served = apply_policy(scores, PROMPTS, bundle.policy)
    return {"served": task.value(served.choice), "argmax": task.value(scores.argmax(axis=1)),
            "default": task.value(np.full(len(task.test_kind), PROMPTS.index(bundle.policy.default_prompt))),
            "trusting": float((~served.fallback & (served.choice != PROMPTS.index(bundle.policy.default_prompt)))
                              .mean()),
            "gate": metrics["gate"].get("verdict"), "tau": metrics["margin_threshold"]}


def run_readme(task: Task, workdir: Path, train_args: list[str], port: int) -> dict:
    """The README's tour as a user types it: import, train, promote, serve, /v1/select/batch."""
    import httpx

    from oirl.settings import get_settings

    # A fresh data home per run, sharing only the built encoder (building it is not what is measured).
    env = {**os.environ, "OIRL_HOME": str(workdir / "data"), "OIRL_ADMIN_TOKEN": "bench",
           "OIRL_ENCODER_DIR": str(get_settings().resolved_encoder_dir)}
    oirl = [str(Path(sys.executable).parent / "oirl")]
    task.logs.to_csv(workdir / "logs.csv", index=False)

    def cli(*args):
        done = subprocess.run(oirl + list(args), env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"oirl {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    cli("data", "import", str(workdir / "logs.csv"), "--task", "support")
    out = cli("train", "--task", "support", *train_args)
    version = int(out.split("registered v")[1].split()[0])
    cli("models", "promote", str(version))
    server = subprocess.Popen(oirl + ["serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        choice, fallback = [], []
        for s in range(0, len(task.test_queries), 200):
            r = httpx.post(f"{base}/v1/select/batch", json={"task": "support", "queries": task.test_queries[s:s + 200]},
                           timeout=120)
            r.raise_for_status()
            choice += [PROMPTS.index(x["prompt"]["text"]) for x in r.json()["results"]]
            fallback += [x["fallback"] for x in r.json()["results"]]
    finally:
        server.terminate()
        server.wait(30)
    return {"served": task.value(np.array(choice)), "fallback_share": float(np.mean(fallback))}


# ---------------------------------------------------------------------------------------------- main
def captured(value: float, ref: dict) -> float:
    gap = ref["oracle"] - ref["best_single"]
    return (value - ref["best_single"]) / gap if gap > 1e-9 else float("nan")


def markdown_table(summary: pd.DataFrame) -> str:
    """``mean [min, max]`` per measure, one row per setting and variant (no extra dependency)."""
    measures = [m for m in dict.fromkeys(c[0] for c in summary.columns)
                if summary[(m, "mean")].notna().any()]  # captured is undefined where no prompt choice matters
    lines = ["| setting | variant | " + " | ".join(measures) + " |", "| --- | --- |" + " --- |" * len(measures)]
    for (setting, variant), row in summary.iterrows():
        cells = [f"{row[(m, 'mean')]:+.3f} [{row[(m, 'min')]:+.3f}, {row[(m, 'max')]:+.3f}]" for m in measures]
        lines.append(f"| {setting} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_setting(name: str) -> tuple[str, int, str]:
    table, rows, logging = name.rsplit("-", 2)
    return table, int(rows), logging


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=None, help="benchmark files (default: OIRL_MIRROR_DIR, else the "
                    "verified download of `oirl data fetch`); its texts make the tasks")
    ap.add_argument("--settings", nargs="+", default=["strong-1000-uniform", "strong-300-uniform",
                                                      "strong-3000-egreedy", "none-1000-uniform"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=["default"],
                    help="default, or backend=NAME[,calibration_folds=K,...] training options")
    ap.add_argument("--path", choices=["library", "readme"], default="library")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--out", default="synthetic_tasks")
    args = ap.parse_args()

    from oirl.embed import make_embedder
    from oirl.settings import get_settings

    if args.root is None:
        args.root = Path(os.environ.get("OIRL_MIRROR_DIR") or get_settings().resolved_benchmark_dir)
    if not (args.root / "hh-rlhf").is_dir():
        ap.error(f"no benchmark files at {args.root}: pass --root, set OIRL_MIRROR_DIR, or run `oirl data fetch`")
    embedder = make_embedder()
    kinds = sorted({k for t in TABLES.values() for k in t})
    texts = {k: kind_texts(args.root, k) for k in kinds}
    started, runs = time.time(), []
    for setting in args.settings:
        table, n_rows, logging = parse_setting(setting)
        for seed in args.seeds:
            task = make_task(texts, table, n_rows, logging, seed)
            ref = task.reference()
            for variant in args.variants:
                params = {} if variant == "default" else dict(kv.split("=") for kv in variant.split(","))
                params = {k: _number(v) for k, v in params.items()}
                with tempfile.TemporaryDirectory(prefix="oirl-synth-") as tmp:
                    if args.path == "library":
                        got = run_library(task, Path(tmp), embedder, params | {"seed": seed})
                    else:
                        flags = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
                        got = run_readme(task, Path(tmp), flags + [f"--seed={seed}"], args.port)
                run = {"setting": setting, "seed": seed, "variant": variant, "rows": len(task.logs), **ref, **got}
                run.update({f"captured_{k}": captured(got[k], ref) for k in ("served", "argmax") if k in got})
                run["served_minus_best_single"] = got["served"] - ref["best_single"]
                if "default" in got:  # what the safeguard itself costs or earns against its own fallback
                    run["served_minus_botr"] = got["served"] - got["default"]
                runs.append(run)
                print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in run.items()}),
                      flush=True)
    RESULTS.mkdir(exist_ok=True)
    meta = {"seconds": round(time.time() - started, 1), "path": args.path, "argv": sys.argv[1:]}
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1))
    frame = pd.DataFrame(runs)
    cols = [c for c in ("captured_served", "captured_argmax", "served_minus_best_single", "served_minus_botr")
            if c in frame]
    summary = frame.groupby(["setting", "variant"])[cols].agg(["mean", "min", "max"]).round(3)
    (RESULTS / f"{args.out}.md").write_text(
        f"# Synthetic tasks ({args.path} path)\n\nGenerated by `benchmarks/synthetic_tasks.py {' '.join(sys.argv[1:])}`"
        f" in {meta['seconds']} s. captured = (value − best single prompt) / (per-kind oracle − best single "
        "prompt), on test texts never logged, values exact under the table; `served_minus_botr`: the served "
        "policy against its own default prompt (BoTr on the logs). Per setting and variant: mean, min and max "
        "over the seeds.\n\n" + markdown_table(summary) + "\n")
    print(summary.to_string())


if __name__ == "__main__":
    main()
