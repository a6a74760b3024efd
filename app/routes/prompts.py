"""GET/POST /v1/prompts: the registry of candidate prompts."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import select

from app.deps import AdminDep, ServiceDep
from app.errors import ProblemError
from app.routes import AUTH, problems
from app.schemas.prompts import PromptIn, PromptList, PromptOut
from oirl.hashing import text_sha256
from oirl.store.engine import transaction
from oirl.store.logs import upsert_prompts
from oirl.store.models import Prompt

router = APIRouter(prefix="/v1/prompts", tags=["prompts"])


def _out(p: Prompt) -> PromptOut:
    return PromptOut(id=p.id, text=p.text, name=p.name, active=p.active, created_at=p.created_at)


@router.get("", response_model=PromptList, summary="Registered prompts (active ones are the default candidates)")
def list_prompts(service: ServiceDep) -> PromptList:
    with service.factory() as s:
        return PromptList(prompts=[_out(p) for p in s.execute(select(Prompt).order_by(Prompt.id)).scalars()])


@router.post("", response_model=PromptOut, status_code=201, dependencies=[AdminDep],
             summary="Register a prompt (idempotent: an existing text answers 200 with its id)",
             responses={200: {"model": PromptOut, "description": "Already registered"}, **problems(422, *AUTH)})
def add_prompt(body: PromptIn, service: ServiceDep, response: Response) -> PromptOut:
    if not body.text.strip():
        raise ProblemError(422, "text is empty")
    if len(body.text) > service.settings.max_prompt_chars:
        raise ProblemError(422, f"text is over the limit of {service.settings.max_prompt_chars:,} characters")
    with transaction(service.factory) as s:
        existed = s.execute(select(Prompt.id).where(Prompt.text_sha256 == text_sha256(body.text))).first()
        pid = upsert_prompts(s, [body.text], names={body.text: body.name} if body.name else None)[body.text]
        prompt = s.get(Prompt, pid)
        out = _out(prompt)
    if existed:
        response.status_code = 200
    service.prompts.refresh(force=True)
    return out
