"""Embedder protocol, the hashing embedder, the content-hash cache, and the real MiniLM."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

from oirl.embed import (
    CachedEmbedder,
    Embedder,
    EmbeddingCache,
    HashingBagOfWordsEmbedder,
    make_embedder,
    text_sha256,
)


class CountingEmbedder(HashingBagOfWordsEmbedder):
    """Records every text it is asked to embed; can fail on a chosen call."""

    def __init__(self, dim=16, fail_on_call=None):
        super().__init__(dim)
        self.seen: list[str] = []
        self.calls = 0
        self.fail_on_call = fail_on_call

    def encode(self, texts):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("simulated crash")
        self.seen += list(texts)
        return super().encode(texts)


def test_hashing_embedder_is_a_deterministic_unit_norm_embedder():
    e = HashingBagOfWordsEmbedder(dim=32)
    assert isinstance(e, Embedder)
    v = e.encode(["two apples", "Two  apples", "", "bananas"])
    assert v.shape == (4, 32) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(v[0], v[1])  # same tokens after lower-casing
    np.testing.assert_array_equal(v, e.encode(["two apples", "Two  apples", "", "bananas"]))
    assert e.identity.key == "hashing-bow-32@blake2b-v1"


def test_cache_embeds_each_distinct_text_once(tmp_path):
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, EmbeddingCache(tmp_path / "c.sqlite3"))
    first = cached.encode(["a b", "c", "a b", "d"])
    assert sorted(inner.seen) == ["a b", "c", "d"]
    again = CachedEmbedder(CountingEmbedder(), EmbeddingCache(tmp_path / "c.sqlite3"))  # a new process would do this
    second = again.encode(["d", "a b", "c"])
    assert again.inner.seen == []
    np.testing.assert_array_equal(second, first[[3, 0, 1]])


def test_cache_keys_on_embedder_identity(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    CachedEmbedder(CountingEmbedder(dim=16), cache).encode(["x"])
    other = CountingEmbedder(dim=8)
    CachedEmbedder(other, cache).encode(["x"])
    assert other.seen == ["x"]  # another identity never reuses the 16-dim vector
    assert cache.count() == 2


def test_crash_mid_run_keeps_finished_blocks_and_resumes(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    texts = [f"text {i}" for i in range(10)]
    crashing = CachedEmbedder(CountingEmbedder(fail_on_call=2), cache, block_size=4)
    with pytest.raises(RuntimeError):
        crashing.encode(texts)
    assert cache.count() == 4  # the first block was committed whole; the failed one left nothing
    resumed = CountingEmbedder()
    CachedEmbedder(resumed, cache, block_size=4).encode(texts)
    assert len(resumed.seen) == 6


def _reader(path, key, hashes, queue):
    found = EmbeddingCache(path).get_many(key, hashes, 16)
    queue.put(len(found))


def test_concurrent_readers_see_whole_batches(tmp_path):
    path = tmp_path / "c.sqlite3"
    inner = HashingBagOfWordsEmbedder(16)
    texts = [f"q{i}" for i in range(200)]
    CachedEmbedder(inner, EmbeddingCache(path)).encode(texts)
    hashes = [text_sha256(t) for t in texts]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_reader, args=(path, inner.identity.key, hashes, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert sorted(queue.get(timeout=5) for _ in procs) == [200, 200]


def test_make_embedder_builds_hashing_and_cache(tmp_path):
    e = make_embedder("hashing-bow-24", cache=tmp_path)
    assert isinstance(e, CachedEmbedder) and e.identity.dim == 24
    assert e.encode(["hello"]).shape == (1, 24)
    assert (tmp_path / "embeddings.sqlite3").exists()


@pytest.mark.slow
def test_real_minilm_offline():
    e = make_embedder("all-MiniLM-L6-v2", cache=False)
    ident = e.identity
    assert ident.name == "all-MiniLM-L6-v2" and ident.dim == 384 and len(ident.revision) == 16
    v = e.encode(["How many apples does Tom have?", "Tom has how many apples?", "Let's think step by step: "])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
    # Sorting by length for batching must not change which vector belongs to which text.
    np.testing.assert_allclose(e.encode(["Let's think step by step: "])[0], v[2], atol=1e-5)
