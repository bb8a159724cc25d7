"""Where DICOM comes from: a folder, a DICOMweb service or a DIMSE (C-FIND/C-GET) peer.

Sources are listed in a YAML file (``MEDFLOW_SOURCES_FILE``), one entry per source::

    sources:
      - name: pacs-web
        kind: dicomweb
        url: http://orthanc:8042/dicom-web
        credentials_env: MEDFLOW_PACS_CREDENTIALS
        cron: "0 2 * * *"
        filters: {ModalitiesInStudy: US}
      - name: pacs-dimse
        kind: dimse
        host: orthanc
        port: 4242
        called_aet: ORTHANC
        calling_aet: MEDFLOW

Names are configuration labels, never patient data: they appear in deployment, flow-run and file names.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from tasks.errors import ConfigError

SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]


class SourceKind(StrEnum):
    """How instances are discovered and retrieved."""

    FOLDER = "folder"
    DICOMWEB = "dicomweb"
    DIMSE = "dimse"


class RetryPolicy(BaseModel):
    """Retries with exponential backoff on network errors (connection refused, timeouts, HTTP 5xx)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(default=5, ge=1, description="Tries per network call, the first included.")
    initial_wait_s: float = Field(default=1.0, ge=0, description="Wait before the second try; doubles each time.")
    max_wait_s: float = Field(default=60.0, ge=0, description="Longest single wait.")
    timeout_s: float = Field(default=30.0, gt=0, description="Connect/read timeout of one call.")


class SourceConfig(BaseModel):
    """One configured source. Only the fields of its ``kind`` are used."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: SourceName
    kind: SourceKind
    cron: str = Field(default="0 2 * * *", description="Schedule of the ingest-<name> deployment (server time).")
    path: Path | None = Field(default=None, description="folder: the directory to ingest.")
    url: str | None = Field(default=None, description="dicomweb: service root, e.g. http://host:8042/dicom-web.")
    host: str | None = Field(default=None, description="dimse: peer host name or address.")
    port: int | None = Field(default=None, ge=1, le=65535, description="dimse: peer port.")
    called_aet: str = Field(default="ANY-SCP", max_length=16, description="dimse: the peer's AE title.")
    calling_aet: str = Field(default="MEDFLOW", max_length=16, description="dimse: our AE title.")
    credentials_env: str | None = Field(
        default=None, description="dicomweb: name of an environment variable holding 'user:password' (HTTP basic)."
    )
    filters: dict[str, str] = Field(
        default_factory=dict, description="Study-level query keys (keyword → value), e.g. ModalitiesInStudy: US."
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    @model_validator(mode="after")
    def _required_fields(self) -> SourceConfig:
        missing = {
            SourceKind.FOLDER: [f for f in ("path",) if getattr(self, f) is None],
            SourceKind.DICOMWEB: [f for f in ("url",) if getattr(self, f) is None],
            SourceKind.DIMSE: [f for f in ("host", "port") if getattr(self, f) is None],
        }[self.kind]
        if missing:
            raise ValueError(f"source {self.name!r} of kind {self.kind.value} needs: {', '.join(missing)}")
        return self


class SourcesFile(BaseModel):
    """The YAML document: a list of uniquely named sources."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> SourcesFile:
        names = [s.name for s in self.sources]
        if len(names) != len(set(names)):
            raise ValueError("source names must be unique")
        return self


def load_sources(path: Path) -> list[SourceConfig]:
    """Read and validate a sources YAML file; a ConfigError names the file and the remedy."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError:
        raise ConfigError(f"cannot read sources file {path}; check MEDFLOW_SOURCES_FILE") from None
    except yaml.YAMLError:
        raise ConfigError(f"sources file {path} is not valid YAML") from None
    try:
        return SourcesFile.model_validate(raw).sources
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"sources file {path} is invalid: {problems}") from None
