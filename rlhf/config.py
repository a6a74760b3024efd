"""Every command's settings: one @dataclass per algorithm, one doc string per field.

These classes are the single source of truth for the CLI (each field is a flag, its doc string the help)
and for JSON config files. They live here, apart from the trainers, and import nothing heavy, so
`rlhf --help` answers without importing torch or transformers. Fields without a default value are
required (an empty string means "not given").
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass, fields
from functools import cache


@cache
def field_docs(cls) -> dict[str, str]:
    """The string literal written under each dataclass field (cleanrl/tyro style), by field name; a subclass's
    doc string wins over its base's."""
    docs = {}
    for klass in reversed(cls.__mro__):
        if klass is object or "__dataclass_fields__" not in vars(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, nxt in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = nxt.value.value.strip()
    return docs


def undocumented_fields(cls) -> list[str]:
    docs = field_docs(cls)
    return [f.name for f in fields(cls) if f.name not in docs]


def required_fields(cls) -> list[str]:
    """Fields whose doc string starts with [required]: they must be given (empty means not given)."""
    return [name for name, doc in field_docs(cls).items() if doc.startswith("[required]")]


@dataclass
class RuntimeConfig:
    """Devices, precision and memory, shared by every trainer (read through `rlhf.runtime`)."""

    mixed_precision: str = "no"
    """no | bf16 | fp16: autocast compute dtype; trained weights and optimiser state stay fp32 (fp16 needs a GPU)"""
    cpu: bool = False
    """run on the CPU even when a GPU is visible"""
    gradient_accumulation_steps: int = 1
    """split each optimiser step's batch into this many micro-batches (same step, less activation memory)"""
    gradient_checkpointing: bool = False
    """recompute activations in the backward pass of trained models (less memory, ~30% more time)"""
    warmup_steps: int = 0
    """linear learning-rate warm-up over this many optimiser steps"""
    lr_schedule: str = "constant"
    """learning rate after warm-up: constant | linear | cosine (decay to 0 at the last optimiser step)"""
    lora_r: int = 0
    """LoRA rank of the trained model(s) (0 = full fine-tuning); frozen base weights load in the autocast dtype"""
    lora_alpha: float = 16.0
    """LoRA scaling alpha (the update is scaled by alpha / r)"""
    lora_dropout: float = 0.0
    """dropout on the LoRA path (0 keeps sampling and training the same function)"""
    lora_target_modules: str = "all-linear"
    """comma-separated module names to adapt, or all-linear"""


@dataclass
class RewardConfig(RuntimeConfig):
    data: str = ""
    """[required] preference data: a JSONL/HH file, or the mirror directory for the gsm8k / oirl-* sources"""
    source: str = "jsonl"
    """data format: jsonl | hh | gsm8k | oirl-gsm8k | oirl-svamp | oirl-mawps"""
    backbone: str = ""
    """local HF model directory for the backbone; empty = the bundled MiniLM encoder"""
    output_dir: str = "runs/reward"
    """where the trained reward model and metrics.jsonl go"""
    imitation_coef: float = 0.0
    """beta of the imitation loss on y+ (needs a causal-LM backbone)"""
    epochs: int = 1
    """passes over the training pairs"""
    batch_size: int = 8
    """pairs per optimiser step (each pair is two sequences)"""
    lr: float = 5e-5
    """AdamW learning rate"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    max_grad_norm: float = 1.0
    """global gradient-norm clip (0 = none)"""
    max_length: int = 256
    """tokens per sequence; the prompt is truncated from the left first; saved with the model and used to score"""
    test_fraction: float = 0.2
    """fraction of prompts/questions held out for evaluation"""
    max_pairs_per_query: int = 0
    """for gsm8k/oirl sources: keep at most this many pairs per question (0 = all)"""
    max_pairs: int = 0
    """use at most this many training pairs, a seeded sample (0 = all); held-out pairs are never capped"""
    eval_every: int = 0
    """evaluate every this many updates (0 = at the end of each epoch only)"""
    seed: int = 0
    """seed of the split, the shuffling and the head initialisation"""


@dataclass
class PolicyConfig(RuntimeConfig):
    """What every trainer of a causal-LM policy shares."""

    policy: str = ""
    """[required] local HF causal LM directory: the policy's initial weights (and the frozen reference)"""
    output_dir: str = "runs/policy"
    """where metrics.jsonl, checkpoints and the final policy go"""
    seed: int = 0
    """seed of sampling, shuffling and prompt order; the same seed repeats a run exactly"""
    max_prompt_length: int = 64
    """prompt tokens kept (the most recent ones); a chat template, when the tokenizer has one, is applied"""
    lr: float = 1e-5
    """AdamW learning rate"""
    max_grad_norm: float = 1.0
    """global gradient-norm clip (0 = none)"""


@dataclass
class PPOConfig(PolicyConfig):
    reward_model: str = ""
    """[required] reward model directory (saved by `rlhf train-rm`, or a HF *ForSequenceClassification)"""
    prompts: str = ""
    """[required] JSONL file whose lines have a `prompt` field (a preference-pairs file works)"""
    value_model: str = ""
    """value model init: a causal reward-model or LM directory sharing the policy's vocabulary; empty = the policy"""
    output_dir: str = "runs/ppo"
    """where metrics.jsonl, checkpoints and the final policy go"""
    total_updates: int = 100
    """number of rollout + optimisation rounds"""
    batch_size: int = 16
    """prompts (= responses) per rollout"""
    mini_batch_size: int = 4
    """responses per optimiser step"""
    ppo_epochs: int = 4
    """passes over each rollout, reshuffled every pass"""
    max_new_tokens: int = 24
    """response length cap"""
    temperature: float = 0.7
    """sampling temperature; log-probs are computed from logits / temperature"""
    kl_coef: float = 0.05
    """initial KL penalty coefficient (beta)"""
    adaptive_kl: bool = False
    """adapt kl_coef toward kl_target (Ziegler et al. 2019)"""
    kl_target: float = 6.0
    """target KL in nats per response, for the adaptive controller"""
    kl_horizon: int = 10000
    """horizon of the adaptive controller, in responses"""
    gamma: float = 1.0
    """discount over response tokens"""
    lam: float = 0.95
    """GAE lambda"""
    cliprange: float = 0.2
    """policy ratio clip epsilon"""
    cliprange_value: float = 0.2
    """value prediction clip around the rollout's values"""
    vf_coef: float = 0.1
    """weight of the value loss"""
    normalize_scores: bool = True
    """standardise scores with running mean/std before adding them to the reward"""
    score_clip: float = 5.0
    """clip (normalised) scores to [-score_clip, score_clip]; 0 = no clip"""
    missing_eos_penalty: float = 1.0
    """subtracted from the score of responses that never emit EOS"""
    save_every: int = 0
    """checkpoint every this many updates (0 = only at the end)"""
    resume: bool = False
    """continue from output_dir/checkpoint when it exists"""


@dataclass
class RAFTConfig(PolicyConfig):
    reward_model: str = ""
    """[required] reward model directory (saved by `rlhf train-rm`, or a HF *ForSequenceClassification)"""
    prompts: str = ""
    """[required] JSONL file whose lines have a `prompt` field (a preference-pairs file works)"""
    output_dir: str = "runs/raft"
    """where metrics.jsonl, checkpoints and the final policy go"""
    iterations: int = 20
    """sample -> rank -> fine-tune rounds"""
    batch_size: int = 16
    """prompts per iteration"""
    k: int = 4
    """responses sampled per prompt"""
    keep: str = "best"
    """'best' = the best response of each prompt; 'top' = the global top `top_fraction` of all samples"""
    top_fraction: float = 0.25
    """fraction of all samples kept when keep = 'top'"""
    sft_epochs: int = 2
    """passes over the kept samples per iteration"""
    mini_batch_size: int = 8
    """kept samples per optimiser step"""
    max_new_tokens: int = 24
    """response length cap"""
    temperature: float = 1.0
    """sampling temperature (KL is measured at this temperature too)"""
    missing_eos_penalty: float = 1.0
    """subtracted from the score of responses that never emit EOS, before ranking"""
    save_every: int = 0
    """checkpoint every this many iterations (0 = only at the end)"""
    resume: bool = False
    """continue from output_dir/checkpoint when it exists"""


@dataclass
class SFTConfig(PolicyConfig):
    data: str = ""
    """[required] JSONL with `prompt` and `response` (or `completion`, or a pairs file's `chosen`) per line"""
    output_dir: str = "runs/sft"
    """where metrics.jsonl and the final policy go"""
    epochs: int = 1
    """passes over the training examples"""
    batch_size: int = 8
    """examples per optimiser step"""
    lr: float = 2e-5
    """AdamW learning rate"""
    max_response_length: int = 128
    """response tokens kept (the first ones, then EOS)"""
    test_fraction: float = 0.1
    """fraction of prompts held out to measure the response NLL"""
    max_examples: int = 0
    """use at most this many training examples, a seeded sample (0 = all)"""


@dataclass
class DPOConfig(PolicyConfig):
    data: str = ""
    """[required] preference data: a JSONL/HH file, or the mirror directory for the gsm8k / oirl-* sources"""
    source: str = "jsonl"
    """data format: jsonl | hh | gsm8k | oirl-gsm8k | oirl-svamp | oirl-mawps"""
    output_dir: str = "runs/dpo"
    """where metrics.jsonl and the final policy go"""
    loss: str = "sigmoid"
    """sigmoid = DPO (Rafailov et al. 2023) | ipo = IPO (Azar et al. 2023)"""
    beta: float = 0.1
    """DPO's inverse temperature of the implicit reward; IPO's regularisation tau (target margin 1/(2 tau))"""
    epochs: int = 1
    """passes over the training pairs"""
    batch_size: int = 8
    """pairs per optimiser step (each pair is two sequences, plus two reference passes)"""
    lr: float = 1e-6
    """AdamW learning rate"""
    max_response_length: int = 128
    """response tokens kept (the first ones, then EOS)"""
    test_fraction: float = 0.2
    """fraction of prompts/questions held out for evaluation"""
    max_pairs_per_query: int = 0
    """for gsm8k/oirl sources: keep at most this many pairs per question (0 = all)"""
    max_pairs: int = 0
    """use at most this many training pairs, a seeded sample (0 = all); held-out pairs are never capped"""
    eval_every: int = 0
    """evaluate every this many optimiser steps (0 = before training and at the end of each epoch)"""


@dataclass
class GRPOConfig(PolicyConfig):
    reward_model: str = ""
    """[required] reward model directory (saved by `rlhf train-rm`, or a HF *ForSequenceClassification)"""
    prompts: str = ""
    """[required] JSONL file whose lines have a `prompt` field (a preference-pairs file works)"""
    output_dir: str = "runs/grpo"
    """where metrics.jsonl and the final policy go"""
    total_updates: int = 100
    """number of rollout + optimisation rounds"""
    batch_size: int = 8
    """prompts per rollout"""
    group_size: int = 4
    """responses sampled per prompt (G); advantages are relative to the group"""
    mini_batch_size: int = 8
    """responses per optimiser step"""
    grpo_epochs: int = 1
    """passes over each rollout (1 = on-policy: the ratio is 1 and the clip never binds)"""
    max_new_tokens: int = 24
    """response length cap"""
    temperature: float = 1.0
    """sampling temperature; log-probs are computed from logits / temperature"""
    kl_coef: float = 0.04
    """beta of the per-token KL penalty (k3 estimator) to the reference, in the loss"""
    cliprange: float = 0.2
    """policy ratio clip epsilon"""
    scale_rewards: bool = True
    """divide each group's centred scores by the group's std (off = Dr. GRPO's unscaled advantages)"""
    missing_eos_penalty: float = 1.0
    """subtracted from the score of responses that never emit EOS"""
    save_every: int = 0
    """checkpoint every this many updates (0 = only at the end)"""
    resume: bool = False
    """continue from output_dir/checkpoint when it exists"""
