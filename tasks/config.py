"""Settings read once at the entry point (CLI or deployment) and passed down; never at import time.

Every field can be set from the environment with the ``MEDFLOW_`` prefix, e.g. ``MEDFLOW_WORKERS=4``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CleanPixelsMode(StrEnum):
    """When burned-in text is removed from pixel data."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


class Settings(BaseSettings):
    """Process-wide settings. Step-specific options live beside their step and are passed explicitly."""

    model_config = SettingsConfigDict(env_prefix="MEDFLOW_", extra="ignore")

    deid_key: SecretStr | None = Field(default=None, description="De-identification key (hex or text).")
    key_file: Path | None = Field(default=None, description="File holding the de-identification key.")
    state_dir: Path = Field(default=Path(".medflow"), description="Prefect home, server database, logs.")
    workers: int = Field(default=2, ge=1, description="Parallel worker processes.")
    clean_pixels: CleanPixelsMode = CleanPixelsMode.AUTO
    ocr_engine: str = Field(default="easyocr", description="Text detector for burned-in PHI: easyocr or rapidocr.")
    ocr_every_frame: bool = Field(
        default=False, description="Paranoid mode: detect text on every frame of a cine, not on composites."
    )
    max_pixel_bytes: int = Field(
        default=4 * 1024**3, description="Largest decoded pixel array accepted; larger inputs are quarantined."
    )
    file_timeout_s: float = Field(default=600.0, description="Per-file processing time limit.")
    sources_file: Path | None = Field(default=None, description="YAML list of PACS/folder sources (tasks.sources).")
    mlflow: bool = Field(default=True, description="Track runs in MLflow (MLFLOW_TRACKING_URI or STATE_DIR/mlflow).")
    locations: dict[str, Path] = Field(
        default_factory=dict,
        description="Named locations (JSON object, name -> path) that deployments refer to (tasks.locations).",
    )


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit non-None overrides (e.g. CLI options) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
