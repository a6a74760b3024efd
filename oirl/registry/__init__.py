"""Model registry: numbered immutable versions on disk, ``champion``/``challenger`` aliases in the store."""

from oirl.registry.artefacts import ArtefactChecksumError, dir_sha256
from oirl.registry.bundle import ModelBundle, load_bundle, read_bundle_metadata, save_bundle
from oirl.registry.live import ChampionWatcher, LoadedModel, load_version
from oirl.registry.registry import (
    AliasMove,
    ModelRegistry,
    PromotionRefused,
    RegistryError,
    TaskNotFound,
    VersionInfo,
    VersionNotFound,
)

__all__ = [
    "AliasMove",
    "ArtefactChecksumError",
    "ChampionWatcher",
    "LoadedModel",
    "ModelBundle",
    "TaskNotFound",
    "load_bundle",
    "read_bundle_metadata",
    "save_bundle",
    "ModelRegistry",
    "PromotionRefused",
    "RegistryError",
    "VersionInfo",
    "VersionNotFound",
    "dir_sha256",
    "load_version",
]
