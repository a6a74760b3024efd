"""Devices, precision, LoRA, optimiser and schedule: what a trainer needs around its maths.

`accelerate` places models and tensors (CPU, one GPU, or one process per GPU under `accelerate launch`,
same script) and applies autocast. Precision policy: every *trained* weight and the optimiser state are
fp32 (master weights); `mixed_precision=bf16|fp16` only changes the dtype of the matmuls (autocast).
Frozen weights (the reward model, PPO's reference, a LoRA base) load directly in the autocast dtype,
which halves their memory and changes nothing: autocast would round them to that dtype anyway.
A checkpoint saved in bf16 therefore never trains in bf16 (where most small updates round away).
"""

from __future__ import annotations

import math
import os
from contextlib import nullcontext

import torch
from accelerate import Accelerator

from rlhf.config import RuntimeConfig

DTYPES = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


def make_accelerator(cfg: RuntimeConfig) -> Accelerator:
    check_runtime(cfg)
    acc = Accelerator(mixed_precision=cfg.mixed_precision, cpu=cfg.cpu)
    if cfg.mixed_precision == "fp16" and acc.device.type != "cuda":
        raise ValueError("fp16 autocast needs a CUDA GPU (it would need a loss scaler on CPU); use bf16 on CPU")
    return acc


def check_runtime(cfg: RuntimeConfig) -> None:
    if cfg.mixed_precision not in DTYPES:
        raise ValueError(f"mixed_precision must be one of {', '.join(DTYPES)}, got {cfg.mixed_precision!r}")
    if cfg.lr_schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {cfg.lr_schedule!r}")
    if cfg.gradient_accumulation_steps < 1:
        raise ValueError("gradient_accumulation_steps must be >= 1")


def frozen_dtype(cfg: RuntimeConfig) -> torch.dtype:
    """Dtype to load weights that are never trained in (see the module doc)."""
    check_runtime(cfg)
    return DTYPES[cfg.mixed_precision]


def trained_dtype(cfg: RuntimeConfig) -> torch.dtype:
    """Full fine-tuning keeps fp32 master weights; under LoRA the base is frozen (adapters stay fp32 in peft)."""
    check_runtime(cfg)
    return DTYPES[cfg.mixed_precision] if cfg.lora_r > 0 else torch.float32


def add_lora(model, cfg: RuntimeConfig, causal_lm: bool):
    """Wrap `model` with LoRA adapters (peft); only the adapters train. Returns the model unchanged if r = 0."""
    if cfg.lora_r <= 0:
        return model
    from peft import LoraConfig, get_peft_model

    targets = cfg.lora_target_modules
    targets = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM" if causal_lm else None)
    return get_peft_model(model, lora)


def is_peft(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "get_base_model")


def adapters_off(model):
    """Context in which a LoRA policy *is* its frozen base: PPO/GRPO/DPO's reference without a second copy."""
    model = unwrap(model)
    return model.disable_adapter() if is_peft(model) else nullcontext()


def merged(model):
    """A plain HF model to save: LoRA adapters merged into the base (in place), or the model itself."""
    model = unwrap(model)
    return model.merge_and_unload() if is_peft(model) else model


def unwrap(model):
    """The module under DistributedDataParallel (or the module itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def enable_checkpointing(model) -> None:
    """Gradient checkpointing on the HF model inside `model` (PeftModel or not); takes effect in train() mode."""
    inner = unwrap(model)
    inner = inner.get_base_model() if is_peft(inner) else inner
    if not getattr(inner, "supports_gradient_checkpointing", False):
        raise ValueError(f"{type(inner).__name__} does not support gradient checkpointing")
    # non-reentrant: works when the inputs need no grad (frozen embeddings under LoRA)
    if hasattr(inner, "activation_checkpointing_enable"):  # transformers >= 5.x's name
        inner.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    inner.config.use_cache = False


def make_optimizer(params, cfg, total_steps: int, weight_decay: float = 0.0, eps: float = 1e-8):
    """AdamW over the trainable params + warm-up then constant / linear / cosine decay, per optimiser step."""
    from transformers import get_scheduler

    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: every parameter is frozen")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=weight_decay, eps=eps)
    sched = get_scheduler(SCHEDULES[cfg.lr_schedule], opt, num_warmup_steps=cfg.warmup_steps,
                          num_training_steps=max(total_steps, 1))
    return opt, sched


def micro_batches(idx: torch.Tensor, n: int) -> list[torch.Tensor]:
    """Split one optimiser step's example indices into `n` micro-batches (gradient accumulation)."""
    if n > len(idx):
        raise ValueError(f"gradient_accumulation_steps {n} exceeds the {len(idx)} examples of an optimiser step")
    return list(idx.tensor_split(n))


def shard(items: list, acc: Accelerator) -> list:
    """This process's share of a global batch (all of it with one process): DDP averages the gradients.
    A tail batch smaller than the number of processes repeats items, so that every rank has work."""
    if not items:
        raise ValueError("empty batch")
    while len(items) < acc.num_processes:
        items = items + items[: acc.num_processes - len(items)]
    return items[acc.process_index:: acc.num_processes]


def optimizer_step(acc: Accelerator, opt, sched, max_grad_norm: float) -> float:
    """Clip (if > 0), step, schedule, zero. Returns the pre-clip gradient norm (nan when not clipping)."""
    norm = math.nan
    if max_grad_norm > 0:
        params = [p for g in opt.param_groups for p in g["params"]]
        norm = float(acc.clip_grad_norm_(params, max_grad_norm))
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)  # free the gradients before the next forward pass
    return norm


def check_dir(path: str | os.PathLike, what: str, need: str = "config.json") -> None:
    """A clear error for a path that is not the model directory it should be."""
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} {p}: no such file or directory")
    if not p.is_dir():
        raise ValueError(f"{what} {p} is a file; it must be a model directory (with {need})")
    if not (p / need).is_file():
        raise ValueError(f"{what} {p} is not a Hugging Face model directory: no {need} in it")


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The parameters that train (all of them, or LoRA adapters + heads), on the CPU, for a checkpoint."""
    return {n: p.detach().cpu() for n, p in unwrap(model).named_parameters() if p.requires_grad}


def load_trainable_state(model, state: dict[str, torch.Tensor]) -> None:
    missing = set(state) - {n for n, _ in unwrap(model).named_parameters()}
    if missing:
        raise ValueError(f"checkpoint does not match the model: unknown parameter(s) {sorted(missing)[:3]}")
    unwrap(model).load_state_dict(state, strict=False)


def save_policy(model, tokenizer, path) -> None:
    """The final policy as a plain HF directory (LoRA merged in place: call this last)."""
    m = merged(model)
    m.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
