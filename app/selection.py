"""Serving-side selection: micro-batched encoder, embedding and score caches, one decision per request.

Why a micro-batcher: the encoder costs roughly the same for 1 query as for a handful, so
concurrent requests should share a pass. One asyncio task feeds a single encoder thread;
while a batch is being encoded, new requests queue, and the next pass takes all of them
(up to ``max_batch``). At concurrency 1 nobody waits for a timer; under load batches form
by themselves. ``max_wait_ms`` adds a deliberate wait for when that is worth it.

Isolation: one request's text must never fail another request of the same pass. If the
batched encoder call fails, each new text is encoded alone and only the requests whose text
fails get the error.

Caches (LRU, bounded by an estimate of the bytes they hold, not by entries: one ranking of 64
long candidates is ~1 MB): query and prompt text -> embedding (encoder thread only), and
(model version, query, candidates, top_k) -> the scores and serialised ranking (event-loop
thread only), so each is touched by one thread and needs no lock. A new champion changes the
version in the key, so stale scores are never served after a hot swap.

What is never cached is the decision: every request gets its own ``decision_id`` and its own
draw from the task's exploration policy (``oirl.select.explore``), and the decision is handed
to ``on_decision`` (the decision log) without waiting for it to be stored.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from oirl.feedback import new_decision_id
from oirl.hashing import text_sha256
from oirl.registry import LoadedModel
from oirl.select import apply_policy, fallback_reason
from oirl.select.explore import GREEDY, Exploration, action_probabilities, draw
from oirl.select.policy import known_mask


@dataclass(frozen=True)
class Candidate:
    id: int | None
    text: str


class LRU:
    """Least recently used first out, bounded by ``max_bytes`` as measured by ``sizeof(key, value)``."""

    def __init__(self, max_bytes: int, sizeof):
        self.max_bytes, self.sizeof = max_bytes, sizeof
        self.bytes = 0
        self._d: OrderedDict = OrderedDict()  # key -> (value, its size)

    def get(self, key):
        found = self._d.get(key)
        if found is None:
            return None
        self._d.move_to_end(key)
        return found[0]

    def put(self, key, value) -> None:
        size = self.sizeof(key, value)
        if size > self.max_bytes:
            return  # would evict everything else and still not fit
        old = self._d.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._d[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, evicted) = self._d.popitem(last=False)
            self.bytes -= evicted

    def __len__(self) -> int:
        return len(self._d)


ENTRY_OVERHEAD = 200  # dict slot, tuple, small objects: an estimate, per entry and per ranking row


def embedding_bytes(text: str, vector: np.ndarray) -> int:
    return sys.getsizeof(text) + vector.nbytes + ENTRY_OVERHEAD


def scored_bytes(key: tuple, scored: Scored) -> int:
    """The key's texts (fresh strings per request), the serialised ranking and the scores."""
    _, query, candidates, _ = key
    texts = sys.getsizeof(query) + sum(sys.getsizeof(c.text) for c in candidates)
    return texts + len(scored.ranking_json) + scored.scores.nbytes + ENTRY_OVERHEAD * (2 + len(candidates))


@dataclass(frozen=True)
class Item:
    model: LoadedModel
    query: str
    candidates: tuple[Candidate, ...]
    top_k: int | None
    exploration: Exploration = GREEDY
    explorable: tuple[bool, ...] = ()  # per candidate: an active prompt of the task (may be explored)
    llm: str | None = None
    allow_unseen: bool = False  # serve a candidate the model has no observations of over one it has


@dataclass(frozen=True)
class Scored:
    """What the model says about one (query, candidate set): cached and shared by every request
    that asks the same; the decision drawn from it is each request's own."""

    scores: np.ndarray  # (n_c,) P(correct)
    greedy: int  # the safe policy's choice
    fallback: bool
    fallback_reason: str | None  # oirl.select.fallback_reason: the same words on every path
    default_index: int | None
    ranking_json: bytes  # the serialised `ranking` (the bulk of an answer, built once)


@dataclass(frozen=True)
class Answer:
    body: bytes  # the JSON answer, ready to send
    decision: dict  # what the decision log records


class Selector:
    def __init__(self, embedder, metrics=None, max_batch: int = 64, max_wait_ms: float = 0.0,
                 answer_cache_bytes: int = 64 << 20, embedding_cache_bytes: int = 64 << 20,
                 on_decision: Callable[[dict], object] | None = None):
        self.embedder = embedder
        self.metrics = metrics
        self.on_decision = on_decision  # the decision log; must not block
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
        # Queries are many and mostly new; prompts are few and reused: a quarter keeps them warm.
        self._query_embs = LRU(embedding_cache_bytes - embedding_cache_bytes // 4, embedding_bytes)
        self._prompt_embs = LRU(embedding_cache_bytes // 4, embedding_bytes)
        self._scored = LRU(answer_cache_bytes, scored_bytes)
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    # -------------------------------------------------------------- public
    async def select(self, item: Item) -> Answer:
        key = (item.model.version, item.query, item.candidates, (item.top_k, item.allow_unseen))
        scored = self._scored.get(key)
        hit = scored is not None
        if not hit:
            if self._queue is None:
                self.start()
            fut = asyncio.get_running_loop().create_future()
            self._queue.put_nowait((item, fut))
            scored = await fut
            self._scored.put(key, scored)
        return self._decide(item, scored, hit)

    async def select_many(self, items: list[Item]) -> list[Answer]:
        """A whole batch in one encoder pass (no queueing behind single requests' batches needed)."""
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self.executor, self._compute, items)
        for r in results:
            if isinstance(r, Exception):
                raise r
        return [self._decide(item, scored, hit=False) for item, scored in zip(items, results, strict=True)]

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="selection-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ----------------------------------------------------------- internals
    def _decide(self, item: Item, scored: Scored, hit: bool) -> Answer:
        """This request's own decision: a fresh id, and a draw from the task's exploration policy."""
        decision_id = new_decision_id()
        if item.exploration.explores:
            explorable = np.array(item.explorable or (False,) * len(item.candidates), dtype=bool)
            pi = action_probabilities(scored.scores, scored.greedy, explorable, item.exploration,
                                      scored.default_index)
            chosen = draw(pi, decision_id)
        else:
            pi = np.zeros(len(item.candidates))
            pi[scored.greedy] = 1.0
            chosen = scored.greedy
        explored = chosen != scored.greedy
        fallback = scored.fallback and not explored
        c = item.candidates[chosen]
        result = {"task": item.model.task, "prompt": {"id": c.id, "text": c.text},
                  "p_correct": float(scored.scores[chosen]), "model_version": item.model.version,
                  "fallback": fallback, "fallback_reason": scored.fallback_reason if fallback else None,
                  "explored": explored, "propensity": float(pi[chosen]), "decision_id": decision_id}
        head = json.dumps(result, separators=(",", ":")).encode()
        body = head[:-1] + b',"ranking":' + scored.ranking_json + b"}"
        decision = {"id": decision_id, "task": item.model.task, "query_text": item.query, "llm": item.llm,
                    "candidates": [{"id": k.id} if k.id is not None else {"text": k.text} for k in item.candidates],
                    "probabilities": pi.tolist(), "scores": scored.scores.tolist(), "chosen": chosen,
                    "propensity": float(pi[chosen]), "explored": explored, "fallback": fallback,
                    "model_version": item.model.version, "policy": _policy_record(item)}
        if self.metrics is not None:
            self.metrics.cache.labels("hit" if hit else "miss").inc()
            self.metrics.selections.labels("explored" if explored else "fallback" if fallback else "model").inc()
        if self.on_decision is not None:
            self.on_decision(decision)
        return Answer(body, decision)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            batch = [await queue.get()]
            if self.max_wait:
                await asyncio.sleep(self.max_wait)
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            live = [(item, fut) for item, fut in batch if not fut.done()]  # drop cancelled (client gone)
            if not live:
                continue
            try:
                results = await loop.run_in_executor(self.executor, self._compute, [i for i, _ in live])
            except Exception as exc:  # the whole pass failed (e.g. encoder error): fail its requests
                results = [exc] * len(live)
            for (_, fut), res in zip(live, results, strict=True):
                if fut.done():
                    continue
                if isinstance(res, Exception):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)

    def _embed(self, texts: list[str], cache: LRU) -> tuple[dict[str, np.ndarray], dict[str, Exception]]:
        """Embeddings of ``texts`` (one pass for the new ones), and the texts that could not be encoded."""
        found = {t: cache.get(t) for t in dict.fromkeys(texts)}
        missing = [t for t, v in found.items() if v is None]
        failed: dict[str, Exception] = {}
        if missing:
            try:
                vectors = list(self.embedder.encode(missing))  # (n_missing, d), one pass
            except Exception:  # some text broke the pass: encode each alone so only its owners fail
                vectors = []
                for t in missing:
                    try:
                        vectors.append(self.embedder.encode([t])[0])
                    except Exception as exc:
                        failed[t] = exc
                        vectors.append(None)
            for t, v in zip(missing, vectors, strict=True):
                if v is not None:
                    cache.put(t, v)
                    found[t] = v
        if self.metrics is not None and cache is self._query_embs:
            self.metrics.encoder_batch.observe(len(missing))
        return found, failed

    def _compute(self, items: list[Item]) -> list[Scored | Exception]:
        """Runs on the encoder thread: embed every new query once, score per (model, candidate set)."""
        q_vec, q_failed = self._embed([i.query for i in items], self._query_embs)
        groups: dict[tuple, list[int]] = {}
        out: list[Scored | Exception] = [None] * len(items)  # type: ignore[list-item]
        for n, item in enumerate(items):
            if item.query in q_failed:
                out[n] = q_failed[item.query]
            else:
                groups.setdefault((item.model.version, item.candidates, item.allow_unseen), []).append(n)
        for members in groups.values():
            try:
                first = items[members[0]]
                texts = [c.text for c in first.candidates]
                p_vec, p_failed = self._embed(texts, self._prompt_embs)
                if p_failed:
                    raise next(iter(p_failed.values()))
                Q = np.stack([q_vec[items[n].query] for n in members])  # (n_q, d)
                P = np.stack([p_vec[t] for t in texts])  # (n_c, d)
                scores = first.model.model.score(Q, P)  # (n_q, n_c)
                # the same rule as every other path
                chosen = apply_policy(scores, texts, first.model.policy, allow_unseen=first.allow_unseen)
                default = first.model.policy.default_index_in(texts) if first.model.policy else None
                seen = known_mask(first.model.policy, texts)  # once per candidate set, not per query
                for row, n in enumerate(members):
                    out[n] = _scored(items[n], chosen, row, default, first.model.policy, seen)
            except Exception as exc:
                for n in members:
                    out[n] = exc
        return out


def _scored(item: Item, chosen, row: int, default_index: int | None, policy, seen: np.ndarray) -> Scored:
    cands = item.candidates
    ranking = [{"prompt": {"id": cands[j].id, "text": cands[j].text}, "p_correct": float(chosen.scores[row, j]),
                "seen": bool(seen[j])} for j in chosen.ranking[row][: item.top_k or len(cands)]]
    fallback = bool(chosen.fallback[row])
    reason = fallback_reason(policy, float(chosen.margin[row])) if fallback else None
    return Scored(scores=chosen.scores[row].copy(), greedy=int(chosen.choice[row]), fallback=fallback,
                  fallback_reason=reason, default_index=default_index,
                  ranking_json=json.dumps(ranking, separators=(",", ":")).encode())


def _policy_record(item: Item) -> dict:
    policy = item.model.policy
    return {"exploration": asdict(item.exploration),
            "margin_threshold": None if policy is None or math.isinf(policy.margin_threshold)
            else policy.margin_threshold,
            "default_prompt_sha256": None if policy is None else text_sha256(policy.default_prompt)}
