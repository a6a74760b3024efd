"""Do the served answers agree with the offline evaluation? Same model, same queries, same candidates.

Trains one reward model on a benchmark task's `paper` training split (as `oirl.evaluate` does),
computes the evaluation's choices for the test queries, then saves the same model as a bundle,
registers and promotes it in a throwaway store, and asks the service (`POST /v1/select`, one
query per request through the micro-batcher, candidates in a shuffled order per request) for
each test query. Writes benchmarks/results/served_vs_evaluated.json.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/served_vs_evaluated.py --root /work/shared/data --task mawps
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="benchmark files (e.g. ../shared/data)")
    ap.add_argument("--task", default="mawps", choices=["gsm8k", "svamp", "mawps"])
    ap.add_argument("--n", type=int, default=400, help="test queries to compare")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from app.main import create_app
    from oirl.datasets.benchmark import load_benchmark
    from oirl.embed import make_embedder
    from oirl.evaluate import split_logs
    from oirl.registry import ModelBundle, ModelRegistry, save_bundle
    from oirl.reward import fit_reward_model
    from oirl.select import apply_policy, calibrate_policy
    from oirl.settings import Settings
    from oirl.store.engine import make_engine, make_session_factory
    from oirl.store.migrate import upgrade
    from oirl.tasks import TaskSpec, create_task

    logs = load_benchmark(args.task, args.root)
    cands = list(range(6))
    split = split_logs(logs, "paper", cands)
    train = logs[logs["query_index"].isin(split.train_queries) & logs["prompt_index"].isin(cands)]
    embedder = make_embedder(cache=False)
    trained = fit_reward_model(train, embedder)
    policy = calibrate_policy(trained)
    texts = logs.drop_duplicates("prompt_index").set_index("prompt_index").loc[cands, "prompt"].tolist()
    questions = logs.drop_duplicates("query_index").set_index("query_index").loc[split.test_queries, "query"]
    questions = questions.drop_duplicates().head(args.n).tolist()
    # The evaluation's path: every test query embedded in one batch, scored in one call.
    evaluated = apply_policy(trained.model.score(embedder.encode(questions), embedder.encode(texts)), texts, policy)
    eval_choice = [texts[c] for c in evaluated.choice]

    with tempfile.TemporaryDirectory() as home:
        url = f"sqlite:///{home}/oirl.db"
        upgrade(url)
        factory = make_session_factory(make_engine(url))
        create_task(factory, TaskSpec(name=args.task, prompts=texts))
        registry = ModelRegistry(factory, Path(home) / "models")
        bundle = ModelBundle(trained.model, policy, args.task, texts, {"task": args.task})
        registry.promote(registry.register(save_bundle(bundle, Path(home) / "m")).id)
        settings = Settings(home=Path(home), database_url=url, run_jobs=False)
        rnd = random.Random(0)
        served, fallback = [], 0
        start = time.perf_counter()
        with TestClient(create_app(settings, embedder=embedder)) as client:
            while client.get("/readyz").status_code != 200:
                time.sleep(0.1)
            for q in questions:
                order = texts[:]
                rnd.shuffle(order)
                body = client.post("/v1/select", json={"query": q, "candidates": [{"text": t} for t in order]}).json()
                served.append(body["prompt"]["text"])
                fallback += body["fallback"]
        seconds = time.perf_counter() - start
    agree = sum(a == b for a, b in zip(served, eval_choice, strict=True))
    out = {"task": args.task, "n_queries": len(questions), "agree": agree, "share": agree / len(questions),
           "served_fallback_share": fallback / len(questions),
           "evaluated_fallback_share": float(evaluated.fallback.mean()), "serve_seconds": round(seconds, 1),
           "note": "served one query per request, candidates shuffled per request; evaluation embeds the "
                   "test queries in one batch"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "served_vs_evaluated.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
