"""`rlhf train-rm | sft | dpo | ppo | raft | grpo`: every option is a field of the command's config dataclass.

Settings come from `--config file.json` (any subset of the fields) and/or flags; flags win. The help text of
each flag is the doc string under the field (`rlhf/config.py`), so the dataclass is the single source of
truth; booleans get `--flag/--no-flag`, fields documented `[required]` must be given. This module imports
only typer and `rlhf.config`: torch and transformers load when a command runs, so `--help` is fast.
Multi-GPU: `accelerate launch -m rlhf.cli ppo ...` runs the same command in one process per GPU.
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Annotated, Optional

import typer

from rlhf.config import (
    DPOConfig,
    GRPOConfig,
    PPOConfig,
    RAFTConfig,
    RewardConfig,
    RuntimeConfig,
    SFTConfig,
    field_docs,
    required_fields,
)

app = typer.Typer(help="RLHF on preference data: reward model, SFT, DPO/IPO, PPO, RAFT, GRPO.",
                  no_args_is_help=True, add_completion=False, rich_markup_mode=None)
TYPES = {"str": str, "int": int, "float": float, "bool": bool}
RUNTIME = {f.name for f in fields(RuntimeConfig)}


class UsageError(ValueError):
    """The command line or config file cannot be used as given."""


def load_config(cls, config: Path | None, overrides: dict):
    """Dataclass from a JSON file plus flag overrides; unknown keys are an error, not silently ignored."""
    values = {}
    if config is not None:
        try:
            values = json.loads(Path(config).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UsageError(f"cannot read config {config}: {e}") from None
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise UsageError(f"{config}: unknown field(s) {', '.join(sorted(unknown))}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = cls(**values)
    for name in required_fields(cls):
        if not getattr(cfg, name):
            raise UsageError(f"--{name.replace('_', '-')} is required")
    return cfg


def _option(f, doc: str):
    flag = f"--{f.name.replace('_', '-')}"
    default = f.default if f.default is not MISSING else None
    if doc.startswith("[required]"):
        help_text = doc
    else:
        help_text = f"{doc} [default: {str(default).lower() if isinstance(default, bool) else default!r}]"
    if f.type == "bool":
        return typer.Option(f"{flag}/--no-{flag[2:]}", help=help_text, show_default=False)
    return typer.Option(flag, help=help_text, show_default=False)


def _command(name: str, cls, run, help_text: str):
    """Register a typer command whose options are generated from the fields of `cls`: required ones first,
    the shared runtime ones (devices, precision, LoRA) last."""
    docs = field_docs(cls)
    params = [inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[Path], typer.Option(help="JSON file with any of the fields below; flags override it")])]  # noqa: UP045
    required = required_fields(cls)
    ordered = ([f for f in fields(cls) if f.name in required]
               + [f for f in fields(cls) if f.name not in RUNTIME and f.name not in required]
               + [f for f in fields(cls) if f.name in RUNTIME])
    for f in ordered:
        annotation = Annotated[Optional[TYPES[f.type]], _option(f, docs.get(f.name, ""))]  # noqa: UP045
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))

    def command(**kwargs):
        config = kwargs.pop("config")
        try:
            cfg = load_config(cls, config, kwargs)
            result = run(cfg)
        except (ValueError, OSError) as e:  # data, paths and settings errors; PreferenceDataError is a ValueError
            typer.secho(f"error: {e}", err=True, fg="red")
            raise typer.Exit(2) from None
        typer.echo(json.dumps(result, indent=1))

    command.__signature__ = inspect.Signature(params)
    command.__name__ = name.replace("-", "_")
    app.command(name, help=help_text)(command)


def run_train_rm(cfg: RewardConfig) -> dict:
    from rlhf.data import PreferenceDataError, cap, load_pairs, split_by_group
    from rlhf.reward import RewardModel, evaluate, train_reward_model
    from rlhf.runtime import check_dir, trained_dtype

    pairs = load_pairs(cfg.source, cfg.data, cfg.max_pairs_per_query or None, cfg.seed)
    if not pairs:
        raise PreferenceDataError(f"{cfg.data}: no usable preference pairs left after cleaning")
    train, test = split_by_group(pairs, cfg.test_fraction, cfg.seed)
    available, train = len(train), cap(train, cfg.max_pairs, cfg.seed)
    typer.echo(f"{len(train)} of {available} training pairs, {len(test)} held-out pairs (split by prompt)", err=True)
    if cfg.backbone:
        check_dir(cfg.backbone, "--backbone")
    model = RewardModel.from_backbone(cfg.backbone or None, with_lm_head=cfg.imitation_coef > 0,
                                      dtype=trained_dtype(cfg), max_length=cfg.max_length)
    before = evaluate(model, test) if test else {}
    out = Path(cfg.output_dir)
    train_reward_model(model, train, test, cfg, log_path=out / "metrics.jsonl")
    model.save_pretrained(out)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    summary = {"output_dir": str(out), "train_pairs": len(train), "train_pairs_available": available,
               "eval/accuracy_before": before.get("eval/accuracy"), **evaluate(model, test)}
    (out / "eval.json").write_text(json.dumps(summary, indent=1))
    return summary


def _summary(history: list[dict], out: str, keys=("objective/scores", "objective/kl")) -> dict:
    rows = [h for h in history if all(k in h for k in keys)]
    return {"output_dir": out, "updates": len(rows),
            "first": {k: rows[0][k] for k in keys} if rows else {},
            "last": {k: rows[-1][k] for k in keys} if rows else {}}


def run_ppo(cfg: PPOConfig) -> dict:
    from rlhf.ppo import build_trainer

    return _summary(build_trainer(cfg).train(), cfg.output_dir)


def run_raft(cfg: RAFTConfig) -> dict:
    from rlhf.raft import build_trainer

    return _summary(build_trainer(cfg).train(), cfg.output_dir)


def run_grpo(cfg: GRPOConfig) -> dict:
    from rlhf.grpo import build_trainer

    return _summary(build_trainer(cfg).train(), cfg.output_dir)


def run_dpo(cfg: DPOConfig) -> dict:
    from rlhf.dpo import build_trainer

    trainer = build_trainer(cfg)
    history = trainer.train()
    evals = [h for h in history if "eval/pairs" in h]
    return {"output_dir": cfg.output_dir, "train_pairs": len(trainer.train_pairs),
            "before": evals[0] if evals else {}, "after": evals[-1] if evals else {}}


def run_sft(cfg: SFTConfig) -> dict:
    from rlhf.sft import build_trainer

    trainer = build_trainer(cfg)
    history = trainer.train()
    evals = [h for h in history if "eval/nll" in h]
    return {"output_dir": cfg.output_dir, "train_examples": len(trainer.train_set),
            "eval/nll_before": evals[0]["eval/nll"] if evals else None,
            "eval/nll_after": evals[-1]["eval/nll"] if evals else None}


_command("train-rm", RewardConfig, run_train_rm, "Train a reward model on preference pairs.")
_command("sft", SFTConfig, run_sft, "Supervised fine-tuning of a causal LM on (prompt, response) examples.")
_command("dpo", DPOConfig, run_dpo, "Fine-tune a causal LM on preference pairs with DPO or IPO (no reward model).")
_command("ppo", PPOConfig, run_ppo, "Fine-tune a causal LM with PPO against a reward model.")
_command("raft", RAFTConfig, run_raft, "Fine-tune a causal LM with RAFT (best-of-K, then SFT).")
_command("grpo", GRPOConfig, run_grpo, "Fine-tune a causal LM with GRPO (group-relative advantages, no value model).")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    app()


if __name__ == "__main__":
    main()
