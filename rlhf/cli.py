"""`rlhf train-rm | ppo | raft`: every option is a field of the command's config dataclass.

Settings come from `--config file.json` (any subset of the fields) and/or flags; flags win. The help
text of each flag is the doc string under the field, so the dataclass is the single source of truth.
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

from rlhf.config import PPOConfig, RAFTConfig, RewardConfig
from rlhf.data import PreferenceDataError
from rlhf.utils import field_docs

app = typer.Typer(help="RLHF on preference data: reward model, PPO, RAFT.", no_args_is_help=True,
                  add_completion=False)
TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def load_config(cls, config: Path | None, overrides: dict):
    """Dataclass from a JSON file plus flag overrides; unknown keys are an error, not silently ignored."""
    values = {}
    if config is not None:
        try:
            values = json.loads(Path(config).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise PreferenceDataError(f"cannot read config {config}: {e}") from None
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise PreferenceDataError(f"{config}: unknown field(s) {', '.join(sorted(unknown))}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


def _command(name: str, cls, run, help_text: str):
    """Register a typer command whose options are generated from the fields of `cls`."""
    docs = field_docs(cls)
    params = [inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[Path], typer.Option(help="JSON file with any of the fields below; flags override it")])]  # noqa: UP045
    for f in fields(cls):
        default = f.default if f.default is not MISSING else None
        option = typer.Option(f"--{f.name.replace('_', '-')}", help=f"{docs.get(f.name, '')} (default: {default!r})",
                              show_default=False)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[Optional[TYPES[f.type]], option]))  # noqa: UP045

    def command(**kwargs):
        config = kwargs.pop("config")
        try:
            cfg = load_config(cls, config, kwargs)
            result = run(cfg)
        except (PreferenceDataError, ValueError, FileNotFoundError, OSError) as e:
            typer.secho(f"error: {e}", err=True, fg="red")
            raise typer.Exit(2) from None
        typer.echo(json.dumps(result, indent=1))

    command.__signature__ = inspect.Signature(params)
    command.__name__ = name.replace("-", "_")
    app.command(name, help=help_text)(command)


def run_train_rm(cfg: RewardConfig) -> dict:
    from rlhf.data import load_pairs, split_by_group
    from rlhf.reward import RewardModel, evaluate, train_reward_model
    from rlhf.runtime import check_dir, trained_dtype

    if not cfg.data:
        raise PreferenceDataError("--data is required (a file, or the mirror directory for gsm8k/oirl-*)")
    pairs = load_pairs(cfg.source, cfg.data, cfg.max_pairs_per_query or None, cfg.seed)
    if not pairs:
        raise PreferenceDataError(f"{cfg.data}: no usable preference pairs left after cleaning")
    train, test = split_by_group(pairs, cfg.test_fraction, cfg.seed)
    typer.echo(f"{len(train)} training pairs, {len(test)} held-out pairs (split by prompt)", err=True)
    if cfg.backbone:
        check_dir(cfg.backbone, "--backbone")
    model = RewardModel.from_backbone(cfg.backbone or None, with_lm_head=cfg.imitation_coef > 0,
                                      dtype=trained_dtype(cfg))
    out = Path(cfg.output_dir)
    train_reward_model(model, train, test, cfg, log_path=out / "metrics.jsonl")
    model.save_pretrained(out)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    summary = {"output_dir": str(out), "train_pairs": len(train), **evaluate(model, test)}
    (out / "eval.json").write_text(json.dumps(summary, indent=1))
    return summary


def _summary(history: list[dict], out: str) -> dict:
    keys = ("objective/scores", "objective/kl")
    return {"output_dir": out, "updates": len(history),
            "first": {k: history[0][k] for k in keys} if history else {},
            "last": {k: history[-1][k] for k in keys} if history else {}}


def run_ppo(cfg: PPOConfig) -> dict:
    from rlhf.ppo import build_trainer

    _require_paths(cfg, ("policy", "reward_model", "prompts"))
    return _summary(build_trainer(cfg).train(), cfg.output_dir)


def run_raft(cfg: RAFTConfig) -> dict:
    from rlhf.raft import build_trainer

    _require_paths(cfg, ("policy", "reward_model", "prompts"))
    return _summary(build_trainer(cfg).train(), cfg.output_dir)


def _require_paths(cfg, names) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not value:
            raise PreferenceDataError(f"--{name.replace('_', '-')} is required")
        if not Path(value).exists():
            raise PreferenceDataError(f"--{name.replace('_', '-')} {value}: no such file or directory")


_command("train-rm", RewardConfig, run_train_rm, "Train a reward model on preference pairs.")
_command("ppo", PPOConfig, run_ppo, "Fine-tune a causal LM with PPO against a reward model.")
_command("raft", RAFTConfig, run_raft, "Fine-tune a causal LM with RAFT (best-of-K, then SFT).")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    app()


if __name__ == "__main__":
    main()
