"""RLHF on preference data: pairs (`rlhf.data`), a reward model (`rlhf.reward`), SFT (`rlhf.sft`), DPO/IPO
(`rlhf.dpo`), PPO (`rlhf.ppo`), RAFT (`rlhf.raft`) and GRPO (`rlhf.grpo`), for any Hugging Face causal LM:
tiny models on a CPU in tests, real ones on GPUs through accelerate (`rlhf.runtime`), LoRA through peft.
Every command's settings are a dataclass in `rlhf.config`.

`rlhf` may import `oirl` (data loaders, the Prompt-OIRL reward model); `oirl` never imports `rlhf`.
"""
