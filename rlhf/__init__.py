"""RLHF on preference data: pairs (`rlhf.data`), a reward model (`rlhf.reward`), PPO (`rlhf.ppo`)
and RAFT (`rlhf.raft`), for any Hugging Face causal LM, runnable on CPU with tiny models.

`rlhf` may import `oirl` (data loaders, the Prompt-OIRL reward model); `oirl` never imports `rlhf`.
"""
