"""Embedding throughput on the 35,848 benchmark queries (GSM8K + SVAMP + MAWPS).

Cold: a fresh, empty cache, so every distinct text goes through the model (the cache
also removes exact duplicates, which SVAMP/MAWPS have many of). Warm: the same call again,
answered from the cache. The vectors are then copied into the configured cache so that
training and evaluation afterwards never embed these texts again.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/embed_speed.py --root /work/shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from oirl.datasets.benchmark import DATASETS, PROMPTS, load_queries  # noqa: E402
from oirl.embed import CachedEmbedder, EmbeddingCache, make_embedder, text_sha256  # noqa: E402
from oirl.settings import get_settings  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None, help="benchmark files (default: settings)")
    ap.add_argument("--out", type=Path, default=RESULTS / "embed_speed.json")
    args = ap.parse_args()
    settings = get_settings()
    root = args.root or settings.resolved_benchmark_dir

    queries = [q for d in DATASETS for q in load_queries(d, root)]
    texts = queries + [p.text for p in PROMPTS]
    inner = make_embedder(settings, cache=False, progress=True)
    _ = inner.identity  # load the model outside the timed region
    with tempfile.TemporaryDirectory() as tmp:
        cold = CachedEmbedder(inner, EmbeddingCache(Path(tmp) / "cold.sqlite3"))
        t0 = time.perf_counter()
        vectors = cold.encode(texts)
        cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        cold.encode(texts)
        warm_s = time.perf_counter() - t0
    configured = EmbeddingCache(settings.cache_dir / "embeddings.sqlite3")
    configured.put_many(inner.identity.key, zip((text_sha256(t) for t in texts), vectors, strict=True))

    n_unique = len(set(texts))
    result = {
        "embedder": inner.identity.to_dict(),
        "n_queries": len(queries),
        "n_texts": len(texts),
        "n_distinct_texts": n_unique,
        "cold_seconds": round(cold_s, 2),
        "cold_queries_per_s": round(len(texts) / cold_s, 1),
        "cold_distinct_texts_per_s": round(n_unique / cold_s, 1),
        "warm_seconds": round(warm_s, 3),
        "warm_queries_per_s": round(len(texts) / warm_s, 1),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
