"""Our PPO and reward-model training against TRL's, side by side: seconds per update and peak memory.

Each run is a fresh process on the same assets: one tiny GPT-2 policy (the MiniLM WordPiece vocabulary,
so the LM head has a realistic 30k-way softmax), one tiny GPT-2 sequence-classification reward model
(also the value model's initialisation, as in TRL), the same prompts/pairs (HH-RLHF harmless), batch,
minibatch, epochs, prompt and response lengths, temperature, learning rate and seed.

- PPO: ours vs `trl.experimental.ppo.PPOTrainer` of TRL 1.12.0 (the last TRL with PPO).
- Reward model, DPO, GRPO: ours vs `trl.RewardTrainer`, `trl.DPOTrainer`, `trl.GRPOTrainer` of the current TRL
  (--trl-rm-version). `--modes` picks which; results of modes not run are kept from an existing --out file.

TRL is never a project dependency: each version is installed into its own venv under
benchmarks/rlhf/.venv-trl-<version> (gitignored), CPU torch first so pip does not fetch CUDA wheels.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/rlhf_vs_trl.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

TORCH = "torch==2.13.0"


def ensure_venv(version: str) -> Path:
    """A venv with CPU torch and trl==version; created once, reused afterwards."""
    venv = HERE / "rlhf" / f".venv-trl-{version}"
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import trl"], capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, TORCH], check=True)  # first: the local CPU wheel, so trl does not pull CUDA torch
    subprocess.run([*pip, f"trl=={version}"], check=True)
    return python


def hh_prompts_and_pairs(root: Path, n_prompts: int, n_pairs: int):
    from rlhf.data import HH_HARMLESS_TEST, load_hh_rlhf

    path = root / HH_HARMLESS_TEST
    if path.is_file():
        pairs = load_hh_rlhf(path)
    else:  # no mirror: synthetic text of similar shape
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            for i in range(max(n_prompts, n_pairs)):
                f.write(json.dumps({"chosen": f"\n\nHuman: question {i}?\n\nAssistant: a helpful answer {i}",
                                    "rejected": f"\n\nHuman: question {i}?\n\nAssistant: go away {i}"}) + "\n")
        pairs = load_hh_rlhf(f.name)
    prompts = [p.prompt.rsplit("Human:", 1)[-1] for p in pairs[:n_prompts]]  # the last human turn
    rows = [{"prompt": p.prompt[-300:], "chosen": p.chosen[:300], "rejected": p.rejected[:300]}
            for p in pairs[:n_pairs]]
    return prompts, rows


def build_assets(out: Path, args) -> None:
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from rlhf.modeling import load_tokenizer, minilm_path, save_model, tiny_causal_lm

    tok = load_tokenizer(minilm_path())  # BERT WordPiece: [CLS] = BOS, [SEP] = EOS, [PAD] distinct
    save_model(tiny_causal_lm(tok, hidden=args.hidden, layers=args.layers, heads=4, max_positions=128, seed=0),
               tok, out / "policy")
    torch.manual_seed(1)
    rm = GPT2ForSequenceClassification(GPT2Config(
        vocab_size=len(tok), n_embd=args.hidden, n_layer=args.layers, n_head=4, n_positions=128, num_labels=1,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    save_model(rm, tok, out / "reward")
    prompts, pairs = hh_prompts_and_pairs(Path(args.root), 64, 256)
    spec = {"seed": 0, "lr": 1e-5, "prompts": prompts, "pairs": pairs,
            "ppo": {"batch_size": 16, "mini_batch_size": 4, "ppo_epochs": 4, "max_prompt_length": 32,
                    "max_new_tokens": 24, "temperature": 0.7, "kl_coef": 0.05, "missing_eos_penalty": 1.0,
                    "cliprange": 0.2, "cliprange_value": 0.2, "vf_coef": 0.1, "gamma": 1.0, "lam": 0.95},
            "rm": {"batch_size": 8, "max_length": 128},
            "dpo": {"batch_size": 8, "beta": 0.1, "max_prompt_length": 32, "max_response_length": 96},
            "grpo": {"prompts_per_update": 4, "group_size": 4, "max_prompt_length": 32, "max_new_tokens": 24,
                     "temperature": 0.7, "beta": 0.04}}
    (out / "spec.json").write_text(json.dumps(spec))


def run(python: Path | str, worker: str, mode: str, assets: Path, updates: int, threads: int) -> dict:
    cmd = [str(python), str(HERE / "rlhf" / worker), mode, str(assets), str(updates), str(threads)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        return {"error": f"exit {proc.returncode}", "stderr_tail": proc.stderr[-3000:]}
    return json.loads(lines[-1])


def best(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    return min(ok, key=lambda r: r["s_per_update_median"]) if ok else runs[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="/work/shared/data", help="mirror directory (for the HH-RLHF prompts)")
    ap.add_argument("--out", default=str(HERE / "results" / "rlhf_vs_trl.json"))
    ap.add_argument("--trl-ppo-version", default="1.12.0")
    ap.add_argument("--trl-rm-version", default="1.16.0", help="the current TRL release for RewardTrainer")
    ap.add_argument("--ppo-updates", type=int, default=12)
    ap.add_argument("--rm-updates", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs per side; the fastest is reported")
    ap.add_argument("--dpo-updates", type=int, default=20)
    ap.add_argument("--grpo-updates", type=int, default=8)
    ap.add_argument("--modes", default="ppo,rm,dpo,grpo")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    args = ap.parse_args()

    assets = Path(tempfile.mkdtemp(prefix="rlhf_vs_trl_"))
    build_assets(assets, args)
    results: dict = {"setup": {"policy": f"GPT-2 hidden {args.hidden}, {args.layers} layers, 4 heads, "
                                         "MiniLM WordPiece vocab (30,522)",
                               "reward_and_value_init": "GPT2ForSequenceClassification, same size, 1 label",
                               "threads": args.threads, "machine": platform.machine(),
                               **json.loads((assets / "spec.json").read_text())["ppo"], "rm_batch_size": 8,
                               "rm_max_length": 128},
                     "note": "each side's fastest of --repeats alternating runs; s/update excludes the first "
                             "(warm-up) update; train_peak_mb = RSS growth during training over the RSS just "
                             "before it; process_peak_rss_mb includes imports"}
    out = Path(args.out)
    if out.is_file():  # keep what an earlier run measured for the modes not run now
        results = {**json.loads(out.read_text()), **results}
    names = {"ppo": "ppo", "rm": "reward_model", "dpo": "dpo", "grpo": "grpo"}
    plan = [("ppo", args.trl_ppo_version, args.ppo_updates), ("rm", args.trl_rm_version, args.rm_updates),
            ("dpo", args.trl_rm_version, args.dpo_updates), ("grpo", args.trl_rm_version, args.grpo_updates)]
    for mode, version, updates in [p for p in plan if p[0] in args.modes.split(",")]:
        try:
            trl_python = ensure_venv(version)
        except subprocess.CalledProcessError as e:
            trl_python = None
            trl = {"error": f"could not install trl=={version}: {e}"}
        # alternate ours / TRL and keep each side's fastest run: on a shared machine the load drifts
        runs: dict[str, list[dict]] = {"ours": [], "trl": []}
        for _ in range(args.repeats):
            runs["ours"].append(run(sys.executable, "ours_worker.py", mode, assets, updates, args.threads))
            if trl_python is not None:
                runs["trl"].append(run(trl_python, "trl_worker.py", mode, assets, updates, args.threads))
        ours = best(runs["ours"])
        if trl_python is not None:
            trl = best(runs["trl"])
        entry = {"ours": ours, "trl": trl, "all_runs": runs}
        if "error" not in ours and "error" not in trl:
            entry["speedup_vs_trl"] = round(trl["s_per_update_median"] / ours["s_per_update_median"], 2)
            entry["train_peak_ratio_ours_over_trl"] = round(
                ours["train_peak_mb"] / max(trl["train_peak_mb"], 1e-9), 2)
            entry["process_peak_ratio_ours_over_trl"] = round(
                ours["process_peak_rss_mb"] / trl["process_peak_rss_mb"], 2)
        results[names[mode]] = entry
        print(json.dumps({mode: entry}, indent=1), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
