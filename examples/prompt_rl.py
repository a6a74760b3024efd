"""Prompt optimisation as RL: a tiny prompt-writing LM trained with RAFT or PPO against a Prompt-OIRL reward.

The policy reads a math question and writes an instruction prompt; the reward is the reward model's
predicted P(correct) of the LLM answering that question with that prompt (no LLM call). We report the
mean predicted reward of generated prompts on held-out questions against the best fixed prompt.

The reward is any callable `score(queries, prompts) -> np.ndarray`. With `--reward-model DIR` (a
`PromptRewardModel` saved by `oirl`) it uses that; otherwise it trains a small stand-in: LightGBM on
concat(MiniLM(query), MiniLM(prompt)) over a sample of the real GSM8K logs (prompts 0-5, train split).

Policy: GPT-2 with hidden 64 and 2 layers over the bundled MiniLM WordPiece vocabulary, warm-started by
imitating the 16 logged prompts (so it starts out writing prompt-like text), then RL. A few minutes on CPU:

    HF_HUB_OFFLINE=1 .venv/bin/python examples/prompt_rl.py --root /work/shared/data --algo raft
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rlhf.modeling import (
    encode_queries,
    load_tokenizer,
    logprobs_of,
    minilm_path,
    response_mask,
    sample,
    tiny_causal_lm,
)

Score = Callable[[list[str], list[str]], np.ndarray]


class CachedEmbedder:
    """MiniLM sentence embeddings with an in-memory cache (generated prompts repeat a lot)."""

    def __init__(self):
        from sentence_transformers import SentenceTransformer

        self.model, self.cache = SentenceTransformer(minilm_path(), device="cpu"), {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        new = sorted({t for t in texts if t not in self.cache})
        if new:
            for t, e in zip(new, self.model.encode(new, batch_size=64, normalize_embeddings=True), strict=True):
                self.cache[t] = e
        return np.stack([self.cache[t] for t in texts])


def oirl_scorer(model_dir: str) -> Score:
    """A trained Prompt-OIRL reward model; raises ImportError when `oirl` is not available."""
    from oirl.reward.model import PromptRewardModel

    model, embed = PromptRewardModel.load(model_dir), CachedEmbedder()
    return lambda queries, prompts: model.predict_proba(embed(queries), embed(prompts))


def standin_scorer(logs, n_queries: int, seed: int) -> Score:
    """LightGBM P(correct | concat(e(q), e(p))) on a sample of logged (query, prompt, correct) rows."""
    import lightgbm as lgb

    embed = CachedEmbedder()
    qids = logs["query_index"].drop_duplicates().sample(n_queries, random_state=seed)
    rows = logs[logs["query_index"].isin(qids)]
    X = np.hstack([embed(rows["query"].tolist()), embed(rows["prompt"].tolist())])
    clf = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15, verbose=-1, random_state=seed)
    clf.fit(X, rows["correct"].astype(int).to_numpy())
    return lambda queries, prompts: clf.predict_proba(np.hstack([embed(queries), embed(prompts)]))[:, 1]


def warm_start(policy, tok, queries: list[str], prompts: list[str], steps: int, seed: int) -> None:
    """Imitate the logged prompts (uniformly, whatever the query): the RL starting point writes prompts."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    targets = [tok(p, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for p in prompts]
    for _ in range(steps):
        batch = [(rng.choice(queries), rng.choice(targets)) for _ in range(16)]
        q, qm = encode_queries(tok, [b[0] for b in batch], 48)
        width = max(len(b[1]) for b in batch)
        r = torch.tensor([b[1] + [tok.pad_token_id] * (width - len(b[1])) for b in batch])
        m = response_mask(r, tok.eos_token_id)
        loss = -(logprobs_of(policy, q, qm, r, m, 1.0) * m).sum() / m.sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


@torch.no_grad()
def generated_reward(policy, tok, score: Score, queries: list[str], max_new_tokens: int, seed: int) -> tuple:
    q, qm = encode_queries(tok, queries, 48)
    r = sample(policy, q, qm, max_new_tokens, 1.0, tok.eos_token_id, tok.pad_token_id,
               torch.Generator().manual_seed(seed))
    m = response_mask(r, tok.eos_token_id)
    texts = [tok.decode(x[k & (x != tok.eos_token_id)], skip_special_tokens=True) for x, k in zip(r, m, strict=True)]
    return float(np.mean(score(queries, texts))), texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="/work/shared/data", help="mirror directory with the Prompt-OIRL logs")
    ap.add_argument("--reward-model", default="", help="a saved oirl PromptRewardModel (else a stand-in is trained)")
    ap.add_argument("--algo", choices=["raft", "ppo"], default="raft")
    ap.add_argument("--updates", type=int, default=30)
    ap.add_argument("--warm-start-steps", type=int, default=250)
    ap.add_argument("--lr", type=float, default=0.0, help="RL learning rate (0 = 3e-4 for RAFT, 3e-4 for PPO)")
    ap.add_argument("--standin-queries", type=int, default=600, help="training questions for the stand-in reward")
    ap.add_argument("--eval-queries", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/prompt_rl")
    args = ap.parse_args()
    torch.set_num_threads(1)  # tiny model on a small CPU: one thread avoids sync overhead
    torch.manual_seed(args.seed)
    t0 = time.time()

    from oirl.datasets.benchmark import PROMPTS, load_benchmark

    logs = load_benchmark("gsm8k", Path(args.root))
    train_logs = logs[(logs["split"] == "train") & (logs["prompt_index"] < 6)]
    test_queries = logs.loc[logs["split"] == "test", "query"].drop_duplicates().sample(
        args.eval_queries, random_state=args.seed).tolist()
    score = None
    if args.reward_model:
        try:
            score, source = oirl_scorer(args.reward_model), f"oirl PromptRewardModel {args.reward_model}"
        except ImportError as e:
            print(f"oirl reward model unavailable ({e}); training the stand-in")
    if score is None:
        score = standin_scorer(train_logs, args.standin_queries, args.seed)
        source = f"stand-in LightGBM on concat(MiniLM(q), MiniLM(p)), {args.standin_queries} GSM8K train questions"
    print(f"reward: {source} ({time.time() - t0:.0f}s)")

    prompts = [p.text for p in PROMPTS]
    fixed = {p: float(np.mean(score(test_queries, [p] * len(test_queries)))) for p in prompts}
    best_fixed = max(fixed, key=fixed.get)
    per_query_best = float(np.mean(np.max(np.stack([score(test_queries, [p] * len(test_queries))
                                                    for p in prompts]), axis=0)))

    tok = load_tokenizer(minilm_path())
    policy = tiny_causal_lm(tok, hidden=64, layers=2, heads=4, max_positions=128, seed=args.seed)
    train_queries = train_logs["query"].drop_duplicates().tolist()
    warm_start(policy, tok, train_queries, prompts, args.warm_start_steps, args.seed)
    before, _ = generated_reward(policy, tok, score, test_queries, 32, args.seed)
    print(f"warm start done ({time.time() - t0:.0f}s): mean predicted reward {before:.4f}")

    reward_fn = lambda qs, ps: torch.as_tensor(score(qs, ps), dtype=torch.float32)  # noqa: E731
    out = Path(args.out)
    if args.algo == "raft":
        from rlhf.raft import RAFTConfig, RAFTTrainer

        cfg = RAFTConfig(output_dir=str(out), seed=args.seed, iterations=args.updates, batch_size=16, k=4,
                         max_new_tokens=32, max_prompt_length=47, lr=args.lr or 3e-4, temperature=1.0)
        trainer = RAFTTrainer(cfg, policy, tok, reward_fn, train_queries)
    else:
        from rlhf.ppo import PPOConfig, PPOTrainer
        from rlhf.reward import RewardModel

        cfg = PPOConfig(output_dir=str(out), seed=args.seed, total_updates=args.updates, batch_size=16,
                        mini_batch_size=8, ppo_epochs=2, max_new_tokens=32, max_prompt_length=47,
                        lr=args.lr or 3e-4, temperature=1.0, kl_coef=0.05)
        value = RewardModel(tiny_causal_lm(tok, hidden=64, layers=2, heads=4, seed=args.seed + 1).base_model, tok)
        trainer = PPOTrainer(cfg, policy, tok, value, reward_fn, train_queries)
    history = trainer.train()
    after, samples = generated_reward(policy, tok, score, test_queries, 32, args.seed)
    result = {"algo": args.algo, "reward": source, "eval_queries": len(test_queries),
              "mean_reward_generated_before_rl": round(before, 4), "mean_reward_generated_after_rl": round(after, 4),
              "best_fixed_prompt": best_fixed, "mean_reward_best_fixed_prompt": round(fixed[best_fixed], 4),
              "mean_reward_per_query_best_of_16": round(per_query_best, 4),
              "final_kl": round(history[-1]["objective/kl"], 3), "examples": samples[:5],
              "seconds": round(time.time() - t0)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
