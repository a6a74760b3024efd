"""Off-policy estimators where the truth is known: the real benchmark logs have every prompt's outcome
on every test question, so any policy's true value on the logged questions can be computed.

Per task: a reward model trained on the training split (prompts 0-5, paper protocol) plays the
service's champion. It "logs" N decisions on test questions (drawn with replacement, seeded) with
ε-greedy exploration around its safe choice (ε = 0.1, exact propensities from
``oirl.select.explore``); the reward of a decision is the logged outcome of that question and prompt.
For each target policy (the model's argmax, its safe policy, BoTr, uniform) and each seed, IPS,
SNIPS, DM and DR (``oirl.evaluate.ope``; q̂ = the champion's scores) are compared with the truth
on the same questions: absolute error, whether the 95% interval covers it, interval width, ESS.

Cross-check: the same logged data through Open Bandit Pipeline's estimators (OBP 0.4.1 in its own venv,
benchmarks/.venv-obp, never a project dependency; created on first use, CPU torch first).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ope.py --root /work/shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from oirl.datasets.benchmark import DATASETS, load_benchmark  # noqa: E402
from oirl.embed import make_embedder  # noqa: E402
from oirl.evaluate.ope import ESTIMATORS, LoggedDecisions, deterministic, estimate, uniform  # noqa: E402
from oirl.reward import fit_reward_model  # noqa: E402
from oirl.select import apply_policy, best_of_n, calibrate_policy  # noqa: E402
from oirl.select.explore import Exploration, action_probabilities  # noqa: E402
from oirl.settings import get_settings  # noqa: E402

HERE = Path(__file__).parent
RESULTS = HERE / "results"
OBP_VENV = HERE / ".venv-obp"


def champion_and_truth(dataset: str, root: Path, embedder):
    """The champion's scores S and the full outcome grid O on the test questions (n_test, K)."""
    logs = load_benchmark(dataset, root)
    logs = logs[logs["prompt_index"] < 6]
    trained = fit_reward_model(logs[logs["split"] == "train"], embedder)
    policy = calibrate_policy(trained)
    prompts = trained.table.prompts
    test = logs[logs["split"] == "test"].pivot_table(index="query_index", columns="prompt", values="correct",
                                                     aggfunc="mean")[prompts]
    texts = logs.drop_duplicates("query_index").set_index("query_index").loc[test.index, "query"].tolist()
    scores = trained.model.score(embedder.encode(texts), embedder.encode(prompts))
    return scores, test.to_numpy(dtype=float), prompts, policy, trained.default_index


def targets(scores, prompts, policy, default_index) -> dict[str, np.ndarray]:
    n, k = scores.shape
    return {"argmax": deterministic(best_of_n(scores, prompts).choice, k),
            "safe": deterministic(apply_policy(scores, prompts, policy).choice, k),
            "botr": deterministic(np.full(n, default_index), k),
            "uniform": uniform(np.ones((n, k), bool))}


def run_obp(cases: list[dict]) -> list[dict] | None:
    """OBP's IPS, SNIPS, DM and DR on the same arrays (in its own venv); None if it cannot be set up."""
    python = OBP_VENV / "bin" / "python"
    if not python.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(OBP_VENV)], check=True)
            pip = [str(python), "-m", "pip", "install", "-q"]
            subprocess.run(pip + ["torch==2.13.0"], check=True)  # the CPU wheel on disk, before anything pulls CUDA
            # OBP 0.5.x requires Python < 3.11; 0.4.1 has the same estimators, and its own dependency
            # resolution tries a source build here, so its (unpinned) dependencies are installed first.
            subprocess.run(pip + ["numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "seaborn", "pyyaml",
                                  "tqdm", "mypy-extensions"], check=True)
            subprocess.run(pip + ["--no-deps", "obp==0.4.1"], check=True)
        except subprocess.CalledProcessError as exc:
            print(f"OBP venv could not be set up ({exc}); skipping the cross-check", file=sys.stderr)
            return None
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {f"{key}_{i}": case[key] for i, case in enumerate(cases)
                  for key in ("action", "reward", "pscore", "pi", "q_hat")}
        np.savez(Path(tmp) / "cases.npz", n=len(cases), **arrays)
        out = subprocess.run([str(python), str(HERE / "ope_obp_worker.py"), str(Path(tmp) / "cases.npz")],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"OBP worker failed:\n{out.stderr[-2000:]}", file=sys.stderr)
            return None
        return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--n", type=int, default=5000, help="logged decisions per seed")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--epsilon", type=float, default=0.1)
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--no-obp", action="store_true")
    args = ap.parse_args()
    root = args.root or get_settings().resolved_benchmark_dir
    embedder = make_embedder(get_settings())
    explore = Exploration(mode="epsilon", epsilon=args.epsilon)
    rows, cases, started = [], [], time.perf_counter()
    for dataset in args.datasets.split(","):
        t0 = time.perf_counter()
        scores, outcomes, prompts, policy, default = champion_and_truth(dataset, root, embedder)
        n_test, k = scores.shape
        greedy = apply_policy(scores, prompts, policy).choice
        mu = np.stack([action_probabilities(scores[i], greedy[i], np.ones(k, bool), explore, default)
                       for i in range(n_test)])
        pis = targets(scores, prompts, policy, default)
        print(f"{dataset}: champion ready in {time.perf_counter() - t0:.0f} s ({n_test} test questions)", flush=True)
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            qs = rng.integers(0, n_test, args.n)
            u = rng.random(args.n)
            action = (mu[qs].cumsum(axis=1) < u[:, None]).sum(axis=1).clip(max=k - 1)
            reward = outcomes[qs, action]
            logs = LoggedDecisions(chosen=action, reward=reward, propensity=mu[qs, action],
                                   available=np.ones((args.n, k), bool))
            for name, pi in pis.items():
                truth = float((pi[qs] * outcomes[qs]).sum(axis=1).mean())
                out = estimate(logs, pi[qs], scores[qs], n_boot=args.n_boot, seed=seed)
                row = {"dataset": dataset, "target": name, "seed": seed, "truth": truth, "ess": out["ess"]}
                for e in ESTIMATORS:
                    v, (lo, hi) = out["estimates"][e]["value"], out["estimates"][e]["ci95"]
                    row[e] = {"value": v, "error": v - truth, "covered": bool(lo <= truth <= hi), "width": hi - lo}
                rows.append(row)
                cases.append({"action": action, "reward": reward, "pscore": mu[qs, action], "pi": pi[qs],
                              "q_hat": scores[qs]})
        print(f"{dataset}: {args.seeds} seeds in {time.perf_counter() - t0:.0f} s", flush=True)
    obp = None if args.no_obp else run_obp(cases)
    if obp is not None:
        for row, theirs in zip(rows, obp, strict=True):
            for e in ESTIMATORS:
                row[e]["obp"] = theirs[e]
                row[e]["obp_diff"] = row[e]["value"] - theirs[e]
    summary = summarise(rows)
    meta = {"seconds": round(time.perf_counter() - started, 1), "n": args.n, "seeds": args.seeds,
            "epsilon": args.epsilon, "n_boot": args.n_boot, "embedder": embedder.identity.key,
            "obp": obp is not None}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ope.json").write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=1) + "\n")
    (RESULTS / "ope.md").write_text(markdown(summary, meta))
    print(markdown(summary, meta))


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for target in dict.fromkeys(r["target"] for r in rows):
            group = [r for r in rows if r["dataset"] == dataset and r["target"] == target]
            for e in ESTIMATORS:
                errs = np.array([r[e]["error"] for r in group])
                item = {"dataset": dataset, "target": target, "estimator": e,
                        "truth": float(np.mean([r["truth"] for r in group])), "mae": float(np.abs(errs).mean()),
                        "bias": float(errs.mean()), "coverage": float(np.mean([r[e]["covered"] for r in group])),
                        "width": float(np.mean([r[e]["width"] for r in group])),
                        "ess": float(np.mean([r["ess"] for r in group]))}
                if "obp_diff" in group[0][e]:
                    item["max_abs_diff_obp"] = float(np.max(np.abs([r[e]["obp_diff"] for r in group])))
                out.append(item)
    return out


def markdown(summary: list[dict], meta: dict) -> str:
    obp = meta["obp"]
    lines = ["# Off-policy estimators against the truth (real benchmark logs)", "",
             f"Generated by `benchmarks/ope.py` in {meta['seconds']:.0f} s: {meta['n']:,} logged decisions per seed, "
             f"{meta['seeds']} seeds, ε-greedy logging (ε = {meta['epsilon']}) around the champion's safe choice, "
             f"{meta['n_boot']} bootstrap resamples, embedder `{meta['embedder']}`. Truth: the target's mean "
             "logged outcome on the same questions (full information). MAE and bias over seeds; coverage: share "
             "of seeds whose 95% interval contains the truth."
             + (" |ours − OBP|: largest difference from Open Bandit Pipeline's estimate on the same data." if obp
                else " OBP cross-check not run."), "",
             "| dataset | target | truth | estimator | MAE | bias | 95% coverage | CI width | ESS |"
             + (" max |ours − OBP| |" if obp else ""),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if obp else "")]
    for s in summary:
        lines.append(f"| {s['dataset']} | {s['target']} | {s['truth']:.3f} | {s['estimator'].upper()} | "
                     f"{s['mae']:.4f} | {s['bias']:+.4f} | {s['coverage']:.0%} | {s['width']:.3f} | {s['ess']:,.0f} |"
                     + (f" {s['max_abs_diff_obp']:.1e} |" if obp else ""))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
