"""A model version's content: one function writes it, one reads it.

A ``ModelBundle`` is everything a served selection needs besides the embedder: the reward
model, its selection policy (default prompt and τ), the task it was trained for, the task's
candidate prompts at training time, the data scope it saw, and its metrics (gate included).
``oirl train``, ``POST /admin/retrain`` and ``serve --bootstrap`` write through
``save_bundle``; the registry, the service and ``oirl select`` read through ``load_bundle``.
The embedder identity travels inside the reward model's own metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from oirl.reward import ArtefactError, PromptRewardModel, read_metadata
from oirl.select import SelectionPolicy

BUNDLE_KEY = "bundle"


@dataclass
class ModelBundle:
    model: PromptRewardModel
    """The fitted reward model r̂(q, p)."""
    policy: SelectionPolicy
    """Default prompt and τ: when the model may override the default."""
    task: str
    """Name of the task the model was trained for."""
    prompts: list[str]
    """The task's active candidate prompts when the model was trained."""
    data_scope: dict = field(default_factory=dict)
    """Which logs it saw: task, LLM filter, split, held-out rule, row counts."""
    metrics: dict = field(default_factory=dict)
    """Held-out numbers and the promotion gate's verdict."""

    @property
    def embedder(self) -> dict:
        return self.model.embedder or {}

    @property
    def llm(self) -> str | None:
        """The LLM whose logs the model was limited to (None: every LLM of the task)."""
        return self.data_scope.get("llm")


def save_bundle(bundle: ModelBundle, directory) -> Path:
    """Write the bundle as a self-describing, checksummed artefact directory."""
    extra = {BUNDLE_KEY: {"task": bundle.task, "policy": bundle.policy.to_dict(), "prompts": list(bundle.prompts),
                          "data_scope": bundle.data_scope}}
    return bundle.model.save(directory, metrics=bundle.metrics, extra=extra)


def read_bundle_metadata(directory, task_hint: str | None = None) -> dict:
    """The bundle's fields (task, policy, prompts, data scope) without loading the model.

    ``task_hint``: the task of a version registered before bundles existed (its policy sat
    under ``policy`` or ``selection_policy``), so a migrated store keeps serving it."""
    meta = read_metadata(directory)
    legacy = meta.get("policy") or meta.get("selection_policy")
    if BUNDLE_KEY not in meta and legacy and task_hint:
        return {"task": task_hint, "policy": legacy, "prompts": meta.get("prompts") or [legacy["default_prompt"]],
                "data_scope": meta.get("data") or {}, "metrics": meta.get("metrics") or {}}
    if BUNDLE_KEY not in meta:
        raise ArtefactError(f"{directory} is a reward model without a selection policy and task (saved by "
                            "PromptRewardModel.save); save it with oirl.registry.save_bundle, as `oirl train` does")
    return {**meta[BUNDLE_KEY], "metrics": meta.get("metrics") or {}}


def load_bundle(directory, task_hint: str | None = None) -> ModelBundle:
    """Load and verify (checksums) a bundle written by ``save_bundle``."""
    fields = read_bundle_metadata(directory, task_hint)
    model = PromptRewardModel.load(directory)
    return ModelBundle(model=model, policy=SelectionPolicy.from_dict(fields["policy"]), task=fields["task"],
                       prompts=list(fields["prompts"]), data_scope=fields.get("data_scope") or {},
                       metrics=fields["metrics"])
