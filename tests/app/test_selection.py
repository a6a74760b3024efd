"""The serving selector: one request's bad text never fails the others of its micro-batch; caches
are bounded by bytes."""

from __future__ import annotations

import asyncio

import numpy as np

from app.selection import LRU, Answer, Candidate, Item, Scored, embedding_bytes, scored_bytes


def test_one_unencodable_query_fails_only_its_own_request(client):
    service = client.app.state.service
    selector, model = service.selector, service.watcher.current("synth")
    passes: list[int] = []
    real_encode = selector.embedder.encode

    class Spy:  # the real encoder, counting the texts of each call
        identity = selector.embedder.identity

        def encode(self, texts):
            passes.append(len(texts))
            return real_encode(texts)

    selector.embedder = Spy()
    cands = service.catalog.task("synth").active
    # The edge refuses this text (422); the batcher must still isolate it if one ever gets through.
    queries = [f"What is {n} + {n}?" for n in range(7)] + ["x \ud800 poisoned"]

    async def burst():
        return await asyncio.gather(*(selector.select(Item(model, q, cands, None)) for q in queries),
                                    return_exceptions=True)

    results = client.portal.call(burst)
    assert passes[0] == 8  # one micro-batch held all eight
    assert all(isinstance(r, Answer) for r in results[:7]), results
    assert isinstance(results[7], Exception)
    assert client.post("/v1/select", json={"query": "What is 0 + 0?"}).status_code == 200  # batcher still alive


def test_lru_is_bounded_by_bytes():
    vec = np.zeros(384, dtype=np.float32)
    cache = LRU(100_000, embedding_bytes)
    for n in range(1_000):
        cache.put(f"query {n} " + "x" * 1_000, vec)
    assert cache.bytes <= 100_000 and 30 < len(cache) < 50  # ~2.7 kB each
    assert cache.get("query 999 " + "x" * 1_000) is not None and cache.get("query 0 " + "x" * 1_000) is None
    cache.put("huge", np.zeros(1_000_000, dtype=np.float32))  # larger than the whole budget: not kept
    assert cache.get("huge") is None and cache.bytes <= 100_000


def test_a_ranking_of_long_candidates_is_counted_at_its_real_size():
    cands = tuple(Candidate(None, f"{n} " + "p" * 8_000) for n in range(64))
    ranking = ("[" + ",".join(c.text for c in cands) + "]").encode()
    size = scored_bytes((1, "q", cands, None), Scored(np.zeros(64), 0, False, None, None, ranking))
    assert size > 2 * 64 * 8_000  # the key's texts and the serialised ranking: ~1 MB, as measured in issue 9
