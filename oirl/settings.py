"""One settings class for the library, the CLI and the service (env prefix ``OIRL_``).

Every field has a default that works with nothing configured: a SQLite file and
artefacts under a data home directory, the bundled MiniLM embedder, no admin token
(so write routes refuse rather than open).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "prompt-oirl"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OIRL_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Data home: database, artefacts, caches.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file `oirl.db` in the data home."
    )
    mirror_dir: Path | None = Field(
        default=None,
        description="Local copy of the benchmark files (same layout as upstream); if set, fetch copies from it.",
    )
    benchmark_dir: Path | None = Field(
        default=None, description="Where verified benchmark files live; default: `<home>/benchmark`."
    )
    artefact_dir: Path | str | None = Field(
        default=None, description="Model versions: a directory or an fsspec URL (`file://`, `s3://bucket/prefix`, "
                                  "`gs://...`) shared by every replica; default: `<home>/models`.")
    artefact_storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec storage options for a URL artefact store, as JSON (e.g. "
                                          '`{"endpoint_url": "http://minio:9000"}`); credentials are better left to '
                                          "the filesystem's own environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS).")
    artefact_cache_dir: Path | None = Field(
        default=None, description="Where a URL artefact store's versions are copied (verified) to be loaded; "
                                  "default: `<home>/cache/artefacts`.")
    embedder: str = Field(
        default="all-MiniLM-L6-v2",
        description="Sentence-transformers model name or local path; the default is bundled offline.",
    )
    encoder: Literal["onnx", "onnx-int8", "static", "torch"] = Field(
        default="onnx",
        description="How the embedder runs: `onnx` (ONNX Runtime fp32, the torch encoder's vectors, faster), "
                    "`onnx-int8` (int8 weights, other vectors: models need retraining), `static` (token "
                    "vectors distilled from the model, far faster, weaker), `torch` (sentence-transformers).")
    encoder_sub_batch: int = Field(
        default=4, ge=1, description="Texts per ONNX call after sorting by length (int8: always 1); never one "
                                     "padded call for a whole micro-batch.")
    encoder_dir: Path | None = Field(
        default=None, description="Where the ONNX and static encoders are built once (checksummed); default: "
                                  "`<home>/cache/encoders`. Share it between workers and pods.")
    dask_scheduler: str | None = Field(
        default=None, description="Dask scheduler address (e.g. `tcp://10.0.0.5:8786`): `oirl train` embeds the logs "
                                  "on the cluster's workers and trains LightGBM / XGBoost with their Dask estimators; "
                                  "unset: everything runs in this process. `oirl train --dask` overrides it.")
    dask_connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for the Dask scheduler before failing with a clear error.")
    workers: int = Field(
        default=1, ge=1, description="Service worker processes; with the cores available this sets every "
                                     "runtime's threads (oirl/threads.py). `oirl serve --workers` sets it.")
    default_task: str | None = Field(
        default=None, description="Task used when a request or command names none; unset: the only task, if "
                                  "the store has exactly one.")
    gate_min_queries: int = Field(
        default=30, ge=1, description="Fewest held-out queries a challenger must be judged on before it may "
                                      "replace a champion without force: a sanity floor; the interval of the "
                                      "difference is what measures the evidence.")
    gate_min_lower_bound: float = Field(
        default=-0.02, le=0, description="Where the gate judges by off-policy (DR) estimates: the lowest 95% lower "
                                         "bound of the challenger-minus-champion value it accepts without force.")
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for admin and write routes; unset means they answer 403."
    )

    # --- service: limits, serving and background jobs (owned by the service; see docs/service.md) ---
    max_query_chars: int = Field(default=8_000, ge=1, description="Longest query text /v1/select accepts.")
    max_candidates: int = Field(default=64, ge=1, description="Most candidate prompts per selection request.")
    max_batch: int = Field(default=256, ge=1, description="Most queries per /v1/select/batch request.")
    max_log_rows: int = Field(default=10_000, ge=1, description="Most rows per POST /v1/logs request.")
    max_body_bytes: int = Field(default=16 << 20, ge=1024, description="Largest request body, refused with 413 "
                                "before it is parsed or authenticated (16 MiB: 10,000 log rows of ~1,600 "
                                "characters, or a full /v1/select/batch of long queries).")
    max_prompt_chars: int = Field(default=8_000, ge=1, description="Longest prompt text accepted.")
    champion_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often each worker checks the champion alias and hot-swaps."
    )
    microbatch_max: int = Field(
        default=8, ge=1, description="Most queries per encoder pass (measured best on 2 CPU cores; see docs)."
    )
    microbatch_wait_ms: float = Field(
        default=0.0, ge=0, description="Extra wait to fill an encoder batch; 0 = take what queued meanwhile."
    )
    answer_cache_bytes: int = Field(
        default=64 << 20, ge=0, description="Bytes of serialised /v1/select answers kept (LRU; 0: no cache).")
    embedding_cache_bytes: int = Field(
        default=64 << 20, ge=0, description="Bytes of query and prompt embeddings kept in memory by serving (LRU; "
                                            "a quarter for prompts).")
    job_heartbeat_seconds: float = Field(default=5.0, gt=0, description="Running jobs touch their row this often.")
    job_stale_seconds: float = Field(
        default=60.0, gt=0, description="A running job silent this long is failed by the reaper."
    )
    job_timeout_seconds: float = Field(
        default=6 * 3600.0, gt=0, description="A job running longer than this is failed as timed out (a hung "
                                              "handler keeps its heartbeat going, so the reaper alone never would).")
    worker_healthcheck_seconds: int = Field(
        default=60, ge=1, description="uvicorn's worker health-check timeout with --workers > 1: a worker busy "
                                      "loading its model must not be killed as hung (uvicorn's default is 5 s).")
    run_jobs: bool = Field(default=True, description="Run a background job worker thread inside the service.")
    decision_log: bool = Field(
        default=True, description="Record every selection (its decision_id, candidates, propensity) so feedback "
                                  "can judge it; off: answers still carry a decision_id, feedback finds none.")
    decision_retention_days: float = Field(
        default=90.0, gt=0, description="Decisions older than this are deleted, and feedback on them is refused "
                                        "(410).")
    decision_flush_seconds: float = Field(
        default=0.2, gt=0, description="How often queued decisions are written (one batched transaction).")
    decision_queue_max: int = Field(
        default=50_000, ge=1, description="Decisions held in memory while the store is slow; beyond, new ones are "
                                          "dropped (counted in oirl_decisions_dropped_total), never the request.")
    bootstrap_max_queries: int = Field(
        default=1_000, ge=1, description="Training questions each task's `serve --bootstrap` first model sees "
                                         "(speed)."
    )

    @field_validator("artefact_dir", mode="before")
    @classmethod
    def _path_or_url(cls, value):
        # A URL must stay a string: Path("s3://b/x") would collapse the "//" into "s3:/b/x".
        if isinstance(value, str) and "://" in value:
            return value[len("file://"):] if value.startswith("file://") else value.rstrip("/")
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'oirl.db'}"

    @property
    def resolved_benchmark_dir(self) -> Path:
        return self.benchmark_dir or self.home / "benchmark"

    @property
    def resolved_artefact_dir(self) -> Path | str:
        """A directory, or the URL of a remote store (``oirl.registry.stores.is_remote``)."""
        if isinstance(self.artefact_dir, str) and "://" not in self.artefact_dir:
            return Path(self.artefact_dir)
        return self.artefact_dir or self.home / "models"

    @property
    def resolved_artefact_cache_dir(self) -> Path:
        return self.artefact_cache_dir or self.cache_dir / "artefacts"

    @property
    def resolved_encoder_dir(self) -> Path:
        return self.encoder_dir or self.cache_dir / "encoders"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests build their own ``Settings(...)`` instead."""
    return Settings()
