"""The decision loop replayed on the real benchmark logs, end to end over HTTP.

The benchmark logs are full information (every prompt's outcome on every question), so any
policy's feedback can be replayed. Per task, against a real `oirl` service (uvicorn on a free
127.0.0.1 port, its own SQLite store, the real MiniLM encoder):

1. cold start: a task with the 6 training prompts and no model; the first ``--cold`` rounds are a
   uniformly random prompt per question, logged through POST /v1/logs with propensity 1/6
   (what a team without a model would do), then a first model is trained and promoted;
2. rounds, in batches of ``--batch``: POST /v1/select/batch (the task's exploration: softmax at
   T = 0.02 by default, or ε-greedy)
   -> the replayed outcome of the served prompt -> POST /v1/feedback/batch; every ``--retrain``
   rounds POST /admin/retrain, and the challenger is promoted when its gate says pass;
3. the stream (seeded): training questions drawn with replacement for the first rounds, then
   every test question once: the final window. Test questions follow ``--protocol``: ``grouped``
   (default) keeps their texts out of training; ``paper`` is the published split, whose SVAMP and
   MAWPS test texts all recur among the training questions (seen, though not as the same rows).

Reported on the same stream: the served reward (cumulative and per window), always-BoTr (the
best prompt on the full training logs), the offline model trained on the full training logs
(its safe policy, no exploration), the oracle, the loop's final champion without exploration (what
it learned, apart from what exploring cost), and Vowpal Wabbit's ``cb_explore_adf`` (the same
exploration: ε-greedy with the same ε, or softmax with λ = 1/T; learning online from the same stream
with the same MiniLM query embeddings; installed in its own venv, benchmarks/.venv-vw, never a
project dependency). Paired bootstrap intervals on the test window. A plot of windowed reward
against rounds.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/loop.py --root /work/shared/data [--rounds 20000]

Writes benchmarks/results/loop.json, loop.md and loop.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from oirl.datasets.benchmark import DATASETS, TRAINING_PROMPTS, load_benchmark  # noqa: E402
from oirl.evaluate.metrics import paired_bootstrap_ci  # noqa: E402

HERE = Path(__file__).parent
RESULTS = HERE / "results"
VW_VENV = HERE / ".venv-vw"
TOKEN = "loop-benchmark-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROMPTS = [p.text for p in TRAINING_PROMPTS]
PROTOCOL_WORDS = {"grouped": "grouped split: texts never seen in training",
                  "paper": "paper split: on SVAMP and MAWPS each test text also occurs in training"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grid(dataset: str, root: Path, protocol: str = "grouped"):
    """Question texts, the outcome grid (n_q, 6) in PROMPTS order and the training mask (the rest is test).

    ``grouped`` (default): the test questions' texts never occur among the training questions, so the
    final window is unseen by text. ``paper``: the published split, where on SVAMP and MAWPS every test
    question's text also occurs in training (the runs before this option measured that)."""
    from oirl.evaluate.splits import split_logs

    logs = load_benchmark(dataset, root)
    logs = logs[logs["prompt_index"] < 6]
    split = split_logs(logs, protocol, list(range(6)))
    logs = logs[logs["query_index"].isin(np.concatenate([split.train_queries, split.test_queries]))]
    outcomes = logs.pivot_table(index="query_index", columns="prompt", values="correct", aggfunc="mean")[PROMPTS]
    first = logs.drop_duplicates("query_index").set_index("query_index").loc[outcomes.index]
    return first["query"].tolist(), outcomes.to_numpy(dtype=float), np.isin(outcomes.index, split.train_queries)


def stream(is_train: np.ndarray, rounds: int, seed: int) -> np.ndarray:
    """Question indices: training questions with replacement, then every test question once (shuffled)."""
    rng = np.random.default_rng(seed)
    test = rng.permutation(np.flatnonzero(~is_train))
    n_train_rounds = max(rounds - len(test), 0)
    return np.concatenate([rng.choice(np.flatnonzero(is_train), n_train_rounds), test])


def offline_choices(texts, outcomes, is_train, embedder) -> tuple[np.ndarray, np.ndarray, int]:
    """The offline model on the FULL training logs (every prompt on every training question): its safe
    choice and its plain argmax per question, and BoTr (the best prompt on the training logs)."""
    import pandas as pd

    from oirl.reward import fit_reward_model
    from oirl.select import apply_policy, calibrate_policy

    rows = [{"query": texts[i], "prompt": PROMPTS[j], "reward": outcomes[i, j]}
            for i in np.flatnonzero(is_train) for j in range(len(PROMPTS))]
    trained = fit_reward_model(pd.DataFrame(rows), embedder)
    policy = calibrate_policy(trained)
    order = [trained.table.prompts.index(p) for p in PROMPTS]
    scores = trained.model.score(embedder.encode(texts), embedder.encode(trained.table.prompts))[:, order]
    botr = PROMPTS.index(trained.default_prompt)
    return apply_policy(scores, PROMPTS, policy).choice, scores.argmax(axis=1), botr


def wait_job(client: httpx.Client, job_id: str, timeout: float = 1800) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/admin/jobs/{job_id}", headers=AUTH).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.5)
    raise RuntimeError(f"job {job_id} did not finish in {timeout} s")


def retrain_and_maybe_promote(client: httpx.Client, task: str, gate_decisions: str = "all") -> dict:
    body = {"task": task, "gate_decisions": gate_decisions}
    job = wait_job(client, client.post("/admin/retrain", json=body, headers=AUTH).json()["id"])
    if job["status"] != "succeeded":
        return {"status": "failed", "error": job["error"]}
    version, gate = job["result"]["version"], job["result"]["metrics"]["gate"]
    promoted = gate["verdict"] in ("pass", "no_champion")
    if promoted:
        r = client.post(f"/admin/models/{version}/promote", json={"reason": "loop benchmark"}, headers=AUTH)
        promoted = r.status_code == 200
        deadline = time.monotonic() + 30  # every worker hot-swaps within the poll interval
        while time.monotonic() < deadline and client.get("/readyz").json().get("models", {}).get(task) != version:
            time.sleep(0.2)
    metrics = job["result"]["metrics"]
    return {"version": version, "verdict": gate["verdict"], "promoted": promoted, "method": gate.get("method"),
            "difference": gate.get("difference"), "ci95": gate.get("ci95"), "n_queries": gate.get("n_queries"),
            "provisional": gate.get("provisional"), "fresh_since": gate.get("held_out_since_observation"),
            "default_prompt": PROMPTS.index(metrics["default_prompt"]),
            "share_trusting_model": metrics["validation"].get("share_trusting_model")}


def run_task(client: httpx.Client, dataset: str, texts, outcomes, is_train, order, args) -> dict:
    rng = np.random.default_rng(args.seed)
    client.post("/v1/tasks", json={"name": dataset, "llm": "llama-2-7b-chat", "prompts": PROMPTS}, headers=AUTH)
    cold = order[: args.cold]
    picks = rng.integers(0, len(PROMPTS), len(cold))
    rows = [{"query": texts[q], "prompt": PROMPTS[p], "reward": outcomes[q, p], "propensity": 1 / len(PROMPTS),
             "llm": "llama-2-7b-chat", "observation_id": f"cold-{n}"}
            for n, (q, p) in enumerate(zip(cold, picks, strict=True))]
    r = client.post("/v1/logs", json={"task": dataset, "rows": rows}, headers=AUTH)
    r.raise_for_status()
    served = list(outcomes[cold, picks])
    explored: list[bool] = [True] * len(cold)
    events = [{"round": len(cold), **retrain_and_maybe_promote(client, dataset, args.gate_decisions)}]
    client.put(f"/v1/tasks/{dataset}/exploration", json={"mode": args.exploration, "epsilon": args.epsilon,
                                                         "temperature": args.temperature}, headers=AUTH)
    next_retrain = len(cold) + args.retrain
    for start in range(len(cold), len(order), args.batch):
        qs = order[start : start + args.batch]
        answers = client.post("/v1/select/batch", json={"task": dataset, "queries": [texts[q] for q in qs]})
        answers.raise_for_status()
        results = answers.json()["results"]
        chosen = np.array([PROMPTS.index(a["prompt"]["text"]) for a in results])
        rewards = outcomes[qs, chosen]
        items = [{"decision_id": a["decision_id"], "reward": float(x)} for a, x in zip(results, rewards, strict=True)]
        fb = client.post("/v1/feedback/batch", json={"items": items}, headers=AUTH).json()
        if fb["recorded"] != len(items):
            refused = [x for x in fb["results"] if x["status"] != "recorded"]
            raise RuntimeError(f"{len(refused)} of {len(items)} judgements not recorded at round {start}, e.g. "
                               f"{refused[:2]}; service: {client.get('/readyz').text}")
        served += rewards.tolist()
        explored += [a["explored"] for a in results]
        done = start + len(qs)
        if done >= next_retrain and done < len(order):
            events.append({"round": done, **retrain_and_maybe_promote(client, dataset, args.gate_decisions)})
            next_retrain += args.retrain
            print(f"  {dataset} round {done}: {events[-1]}", flush=True)
    greedy = greedy_on(client, dataset, texts, outcomes, order[~is_train[order]], args.batch)
    return {"served": np.array(served), "explored": np.array(explored), "events": events, "greedy_test": greedy}


def greedy_on(client: httpx.Client, dataset: str, texts, outcomes, questions: np.ndarray, batch: int) -> np.ndarray:
    """What the loop has learned, without the cost of exploring: the final champion's safe choice on
    ``questions`` (exploration switched off for these requests; their decisions are never judged)."""
    r = client.put(f"/v1/tasks/{dataset}/exploration", json={"mode": "greedy"}, headers=AUTH)
    r.raise_for_status()
    rewards = []
    for start in range(0, len(questions), batch):
        qs = questions[start : start + batch]
        answers = client.post("/v1/select/batch", json={"task": dataset, "queries": [texts[q] for q in qs]})
        answers.raise_for_status()
        chosen = [PROMPTS.index(a["prompt"]["text"]) for a in answers.json()["results"]]
        rewards += outcomes[qs, chosen].tolist()
    return np.array(rewards)


def run_vw(q_emb: np.ndarray, outcomes: np.ndarray, order: np.ndarray, args) -> np.ndarray | None:
    """Vowpal Wabbit's cb_explore_adf on the same stream (its own venv); per-round rewards or None."""
    python = VW_VENV / "bin" / "python"
    if not python.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VW_VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "vowpalwabbit", "numpy"], check=True)
        except subprocess.CalledProcessError as exc:
            print(f"Vowpal Wabbit could not be installed ({exc}); skipping it", file=sys.stderr)
            return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stream.npz"
        np.savez(path, q_emb=q_emb[order].astype(np.float32), outcomes=outcomes[order], mode=args.exploration,
                 epsilon=args.epsilon, temperature=args.temperature, seed=args.seed)
        out = subprocess.run([str(python), str(HERE / "loop_vw_worker.py"), str(path)], capture_output=True,
                             text=True)
        if out.returncode != 0:
            print(f"Vowpal Wabbit worker failed:\n{out.stderr[-2000:]}", file=sys.stderr)
            return None
        return np.array(json.loads(out.stdout))


def start_service(home: Path, port: int, args) -> subprocess.Popen:
    cache = Path(os.environ.get("OIRL_HOME", Path.home() / ".local/share/prompt-oirl")) / "cache"
    if cache.is_dir():  # reuse the embedding cache: the benchmark measures the loop, not re-embedding
        (home / "cache").symlink_to(cache)
    env = {**os.environ, "OIRL_HOME": str(home), "OIRL_DATABASE_URL": f"sqlite:///{home / 'oirl.db'}",
           "OIRL_ADMIN_TOKEN": TOKEN, "OIRL_GATE_MIN_QUERIES": str(args.gate_min_queries),
           "OIRL_CHAMPION_POLL_SECONDS": "0.5", "HF_HUB_OFFLINE": "1", "OIRL_MAX_BATCH": str(args.batch)}
    env.pop("OIRL_ARTEFACT_DIR", None)
    env.pop("OIRL_DEFAULT_TASK", None)
    return subprocess.Popen([sys.executable, "-m", "oirl.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=HERE.parent, stdout=subprocess.DEVNULL)


def summarise(dataset, res, order, outcomes, offline, offline_argmax, botr, vw, is_train, args) -> dict:
    test = ~is_train[order]
    series = {"loop (served)": res["served"], "always BoTr": outcomes[order, botr],
              "offline model (full logs)": outcomes[order, offline[order]],
              "offline model (full logs), argmax": outcomes[order, offline_argmax[order]],
              "oracle": outcomes[order].max(axis=1)}
    if vw is not None:
        series["Vowpal Wabbit cb_explore_adf"] = vw
    groups = order[test]
    out = {"dataset": dataset, "rounds": len(order), "test_window": int(test.sum()),
           "explored_share": float(res["explored"].mean()), "events": res["events"], "methods": {}}
    for name, s in series.items():
        m = {"cumulative": float(s.mean()), "test_window": float(s[test].mean()),
             "windows": [float(s[i : i + args.window].mean()) for i in range(0, len(s), args.window)]}
        if name != "always BoTr":
            m["test_ci95_vs_botr"] = list(paired_bootstrap_ci(s[test], series["always BoTr"][test], groups=groups,
                                                              n_boot=1000))
        out["methods"][name] = m
    greedy = res["greedy_test"]  # in the order of the test window
    out["methods"]["loop's final champion, greedy (no exploration)"] = {
        "cumulative": None, "test_window": float(greedy.mean()), "windows": [],
        "test_ci95_vs_botr": list(paired_bootstrap_ci(greedy, series["always BoTr"][test], groups=groups, n_boot=1000))}
    if vw is not None:
        out["test_ci95_loop_vs_vw"] = list(paired_bootstrap_ci(res["served"][test], vw[test], groups=groups,
                                                               n_boot=1000))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--rounds", type=int, default=20_000)
    ap.add_argument("--cold", type=int, default=2_000, help="uniformly random rounds before the first model "
                    "(500 gave first models whose default prompt the gate rarely had the evidence to replace)")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--retrain", type=int, default=2_000, help="rounds between retrains")
    ap.add_argument("--exploration", choices=["epsilon", "softmax", "greedy"], default="softmax")
    ap.add_argument("--epsilon", type=float, default=0.1, help="epsilon mode")
    ap.add_argument("--temperature", type=float, default=0.02,
                    help="softmax mode (Vowpal Wabbit: --softmax --lambda 1/T)")
    ap.add_argument("--gate-min-queries", type=int, default=50)
    ap.add_argument("--gate-decisions", choices=["all", "fresh"], default="all",
                    help="the gate judges on every held-out decision, or only on those logged since the champion "
                         "was trained (RetrainParams.gate_decisions)")
    ap.add_argument("--window", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--protocol", choices=["grouped", "paper"], default="grouped",
                    help="which questions form the final (test) window: grouped = texts never seen in training "
                         "(default); paper = the published split, whose SVAMP/MAWPS test texts all recur in training")
    ap.add_argument("--no-vw", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, metavar="DIR",
                    help="keep the service's home (SQLite store with every decision, the models) in DIR, a new "
                         "directory, instead of a temporary one: to read the gate's verdicts and the decisions after")
    ap.add_argument("--name", default="loop", help="output file stem under benchmarks/results/")
    args = ap.parse_args()
    from oirl.embed import make_embedder
    from oirl.settings import get_settings

    root = args.root or get_settings().resolved_benchmark_dir
    embedder = make_embedder(get_settings())
    reports, started = [], time.perf_counter()
    if args.keep is not None and args.keep.exists():  # a fresh store: an old one would hold another run's tasks
        ap.error(f"--keep {args.keep} exists; give a new directory")
    if args.keep is not None:
        args.keep.mkdir(parents=True)
    with contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(prefix="oirl-loop-") as tmp:
        port = free_port()
        server = start_service(Path(tmp), port, args)
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
            deadline = time.monotonic() + 300
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    sys.exit("service did not start in 300 s")
                time.sleep(0.5)
            for dataset in args.datasets.split(","):
                t0 = time.perf_counter()
                texts, outcomes, is_train = grid(dataset, root, args.protocol)
                order = stream(is_train, args.rounds, args.seed)
                offline, offline_argmax, botr = offline_choices(texts, outcomes, is_train, embedder)
                res = run_task(client, dataset, texts, outcomes, is_train, order, args)
                vw = None if args.no_vw else run_vw(embedder.encode(texts), outcomes, order, args)
                report = summarise(dataset, res, order, outcomes, offline, offline_argmax, botr, vw, is_train, args)
                report["seconds"] = round(time.perf_counter() - t0, 1)
                reports.append(report)
                print(json.dumps({k: v for k, v in report.items() if k != "events"}, indent=1)[:3000], flush=True)
                write_results(reports, args, root, started)  # after every task: a late failure keeps the rest
        finally:
            server.terminate()
            server.wait(30)
    print(markdown(reports, write_results(reports, args, root, started)))


def write_results(reports: list[dict], args, root: Path, started: float) -> dict:
    """<name>.json, .md and .png under benchmarks/results/; returns the run's meta."""
    meta = {"seconds": round(time.perf_counter() - started, 1),
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "root": str(root),
            "commit": git_commit()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"meta": meta, "reports": reports}, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(reports, meta))  # not with_suffix: a name may hold a dot
    plot(reports, RESULTS / f"{args.name}.png", args.window)
    return meta


def git_commit() -> str | None:
    """The code a run measured (a dirty tree is marked): runs of different commits sit side by side."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=HERE).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "oirl", "app"], capture_output=True, text=True,
                               cwd=HERE.parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty else "")


def markdown(reports: list[dict], meta: dict) -> str:
    lines = ["# The decision loop replayed on the real benchmark logs", "",
             f"Generated by `benchmarks/loop.py` in {meta['seconds']:.0f} s: {meta['rounds']:,} rounds per task "
             f"({meta['cold']} cold-start rounds with a uniformly random prompt, then the service's own loop over "
             f"HTTP: select with {meta['exploration']} exploration (ε = {meta['epsilon']}, T = {meta['temperature']}) "
             f"→ replayed outcome → feedback; retrain every "
             f"{meta['retrain']:,} rounds, promotion when the gate passes). The last rounds are every test question "
             f"once ({PROTOCOL_WORDS[meta.get('protocol', 'paper')]}). Intervals: 95% paired bootstrap against "
             "always-BoTr on the test window.", "",
             "| dataset | method | cumulative | test window | CI vs BoTr (test) |", "| --- | --- | --- | --- | --- |"]
    for r in reports:
        for name, m in r["methods"].items():
            ci = m.get("test_ci95_vs_botr")
            cumulative = "-" if m["cumulative"] is None else f"{m['cumulative']:.3f}"
            lines.append(f"| {r['dataset']} | {name} | {cumulative} | {m['test_window']:.3f} | "
                         + (f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "-") + " |")
    lines += ["", "Retrains (round: verdict, ✓ promoted, the model's default prompt pN and the share of validation "
              "questions where its safe policy trusts the model over that default):", ""]
    for r in reports:
        steps = ", ".join(f"{e['round']}: {e.get('verdict', e.get('status'))}{' ✓' if e.get('promoted') else ''}"
                          + retrain_detail(e) for e in r["events"])
        vw = r.get("test_ci95_loop_vs_vw")
        lines.append(f"- {r['dataset']}: {steps}; explored {r['explored_share']:.1%} of rounds"
                     + (f"; loop − VW on the test window: [{vw[0]:+.3f}, {vw[1]:+.3f}]" if vw else ""))
    return "\n".join(lines) + "\n"


def retrain_detail(event: dict) -> str:
    if "default_prompt" not in event:  # a run from before these were recorded, or a failed retrain
        return ""
    trust = event.get("share_trusting_model")
    return f" (p{event['default_prompt']}" + ("" if trust is None else f", trusts {trust:.0%}") + ")"


def plot(reports: list[dict], path: Path, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(reports), 3.6), dpi=100)
    axes = fig.subplots(1, len(reports), squeeze=False)[0]
    for ax, r in zip(axes, reports, strict=True):
        for name, m in r["methods"].items():
            if not m["windows"]:
                continue
            x = (np.arange(len(m["windows"])) + 1) * window
            ax.plot(x, m["windows"], label=name, linestyle=":" if name in ("oracle", "always BoTr") else "-")
        ax.axvline(r["rounds"] - r["test_window"], color="gray", linewidth=0.8)
        ax.set_title(f"{r['dataset']} (right of the line: test questions)", fontsize=9)
        ax.set_xlabel("round")
        ax.set_ylabel(f"mean reward per {window:,} rounds")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
