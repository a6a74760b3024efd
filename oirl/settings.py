"""One settings class for the library, the CLI and the service (env prefix ``OIRL_``).

Every field has a default that works with nothing configured: a SQLite file and
artefacts under a data home directory, the bundled MiniLM embedder, no admin token
(so write routes refuse rather than open).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
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
    artefact_dir: Path | None = Field(
        default=None, description="Model versions on disk; default: `<home>/models`."
    )
    embedder: str = Field(
        default="all-MiniLM-L6-v2",
        description="Sentence-transformers model name or local path; the default is bundled offline.",
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for admin and write routes; unset means they answer 403."
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'oirl.db'}"

    @property
    def resolved_benchmark_dir(self) -> Path:
        return self.benchmark_dir or self.home / "benchmark"

    @property
    def resolved_artefact_dir(self) -> Path:
        return self.artefact_dir or self.home / "models"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests build their own ``Settings(...)`` instead."""
    return Settings()
