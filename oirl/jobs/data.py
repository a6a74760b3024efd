"""Logs from the store in the shape the core's training and evaluation code expects."""

from __future__ import annotations

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from oirl.datasets.benchmark import PROMPTS
from oirl.store.logs import observations_frame

_BENCHMARK_INDEX = {p.text: p.index for p in PROMPTS}
# Prompts that are not benchmark prompts get indices past the benchmark's, stable per store id.
CUSTOM_PROMPT_OFFSET = 1000


def store_logs(factory: sessionmaker[Session], task: str | None = None, llm: str | None = None,
               split: str | None = None) -> pd.DataFrame:
    """Observations with ``query_index`` (store query id) and ``prompt_index`` (benchmark index, or
    ``CUSTOM_PROMPT_OFFSET + prompt id`` for other prompts) next to the texts."""
    with factory() as s:
        df = observations_frame(s, task=task, llm=llm, split=split)
    if df.empty:
        return df.assign(query_index=pd.Series(dtype=int), prompt_index=pd.Series(dtype=int))
    bench = df["prompt"].map(_BENCHMARK_INDEX)
    df["prompt_index"] = bench.fillna(df["prompt_id"] + CUSTOM_PROMPT_OFFSET).astype(int)
    df["query_index"] = df["query_id"].astype(int)
    return df
