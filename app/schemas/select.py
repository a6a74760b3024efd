"""POST /v1/select and /v1/select/batch."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from oirl.validation import DbInt, LlmName, NonEmptyText, StrictInt, TaskName

TASK_DOC = ("The task (GET /v1/tasks); default: OIRL_DEFAULT_TASK, or the only task. Its champion model "
            "scores, and its active prompts are the default candidates.")
QUERY_DOC = "The task text the LLM will answer (1 to OIRL_MAX_QUERY_CHARS characters, default 8,000)."


class CandidateIn(BaseModel):
    """A candidate prompt: a registered prompt by ``id``, or any prompt ``text`` (seen or unseen)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"id": 2}, {"text": "Think first: "}]})
    id: DbInt | None = Field(None, description="Id of a registered prompt (GET /v1/prompts).")
    text: NonEmptyText | None = Field(None, description="Raw prompt text; need not be registered "
                                                        "(1 to OIRL_MAX_PROMPT_CHARS characters).")

    @model_validator(mode="after")
    def exactly_one(self) -> CandidateIn:
        if (self.id is None) == (self.text is None):
            raise ValueError("give exactly one of `id` (a registered prompt) or `text` (a raw prompt)")
        return self


UNSEEN_DOC = ("Let a candidate the model has no observations of be served. By default such a prompt is "
              "ranked (and marked `seen: false`) but a prompt the model has evidence for is served before it.")
CANDIDATES_DOC = ("Prompts to choose from (at most OIRL_MAX_CANDIDATES, default 64). "
                  "Omitted: the task's active prompts.")


class SelectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"query": "Tom has 3 apples and buys 5 more. How many apples does he have?", "top_k": 3}]})
    task: TaskName | None = Field(None, description=TASK_DOC)
    query: NonEmptyText = Field(description=QUERY_DOC)
    candidates: list[CandidateIn] | None = Field(None, min_length=1, description=CANDIDATES_DOC)
    llm: LlmName | None = Field(None, description="The LLM the prompt is for (1 to 128 characters); refused if the "
                                                  "model was trained on another LLM's logs only.")
    top_k: StrictInt | None = Field(None, ge=1, description="Length of `ranking` (default: every candidate).")
    allow_unseen: bool = Field(False, description=UNSEEN_DOC)


class BatchSelectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: TaskName | None = Field(None, description=TASK_DOC)
    queries: list[NonEmptyText] = Field(min_length=1, description="1 to OIRL_MAX_BATCH (default 256) queries, "
                                                                  "embedded in one pass.")
    candidates: list[CandidateIn] | None = Field(None, min_length=1, description=CANDIDATES_DOC)
    llm: LlmName | None = None
    top_k: StrictInt | None = Field(None, ge=1)
    allow_unseen: bool = Field(False, description=UNSEEN_DOC)


class PromptRef(BaseModel):
    id: int | None = Field(description="Registered prompt id; null for a raw text that is not registered.")
    text: str


class RankedPrompt(BaseModel):
    prompt: PromptRef
    p_correct: float = Field(description="Model estimate of P(the LLM answers correctly with this prompt).")
    seen: bool = Field(description="The model has observations of this prompt; false: scored by its embedding "
                                   "alone (served only with `allow_unseen`, or when no candidate is seen).")


class SelectResponse(BaseModel):
    task: str = Field(description="The task whose champion chose.")
    prompt: PromptRef = Field(description="The prompt to use.")
    p_correct: float = Field(description="P(correct) of the chosen prompt.")
    ranking: list[RankedPrompt] = Field(description="Candidates by P(correct), best first (cut to top_k).")
    model_version: int
    fallback: bool = Field(description="True when the model's margin over the best training prompt was below "
                                       "the calibrated threshold, so that safe default was chosen instead.")
    fallback_reason: str | None = Field(None, description="Why the default was chosen (present when `fallback`): "
                                        "the model is never trusted (and why), or this margin was below τ.")
    explored: bool = Field(description="True when the task's exploration served another prompt than the "
                                       "model's (safe) choice.")
    propensity: float = Field(description="Probability with which the serving policy chose this prompt (1 "
                                          "without exploration).")
    decision_id: str = Field(description="Send the judgement of the LLM's answer to POST /v1/feedback with it.")


class BatchSelectResponse(BaseModel):
    results: list[SelectResponse] = Field(description="One answer per query, in request order.")
    task: str
    model_version: int
