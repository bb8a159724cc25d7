"""Where DICOM comes from: a folder, a DICOMweb service, a DIMSE (C-FIND + C-GET/C-MOVE) peer, or a listener.

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
        retrieve: move          # C-MOVE to our own storage SCP (default: get)
        move_port: 11113
      - name: push
        kind: listener          # C-STORE SCP (+ STOW-RS): the PACS pushes, medflow ingests each study
        port: 11112
        ae_title: MEDFLOW
        allow_ae: [ORTHANC]
        allow_hosts: [127.0.0.1]
        quiet_seconds: 60
        modalities: [US, CT]

Names are configuration labels, never patient data: they appear in deployment, flow-run and file names.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from tasks.errors import ConfigError

SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
AETitle = Annotated[str, StringConstraints(pattern=r"^[\x21-\x5b\x5d-\x7e][\x20-\x5b\x5d-\x7e]{0,15}$")]
"""Up to 16 printable ASCII characters without backslash, no leading space (PS3.5 AE value representation)."""
Modality = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9_]{1,16}$")]
LOOPBACK = ("127.0.0.1", "::1")


class SourceKind(StrEnum):
    """How instances are discovered and retrieved."""

    FOLDER = "folder"
    DICOMWEB = "dicomweb"
    DIMSE = "dimse"
    LISTENER = "listener"


class RetrieveMode(StrEnum):
    """How a DIMSE source retrieves: C-GET on the query association, or C-MOVE to our own storage SCP."""

    GET = "get"
    MOVE = "move"


class TlsConfig(BaseModel):
    """TLS for a listener (DIMSE and STOW-RS): our certificate, and the CAs that sign clients' certificates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cert_file: Path = Field(description="PEM certificate chain of this node.")
    key_file: Path = Field(description="PEM private key of that certificate.")
    ca_file: Path | None = Field(default=None, description="PEM CAs; when set, clients must present a certificate.")


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
    port: int | None = Field(default=None, ge=1, le=65535, description="dimse: peer port; listener: our DIMSE port.")
    called_aet: AETitle = Field(default="ANY-SCP", description="dimse: the peer's AE title.")
    calling_aet: AETitle = Field(default="MEDFLOW", description="dimse: our AE title (also the C-MOVE destination).")
    retrieve: RetrieveMode = Field(default=RetrieveMode.GET, description="dimse: C-GET, or C-MOVE to move_port.")
    move_port: int | None = Field(
        default=None, ge=1, le=65535, description="dimse, retrieve move: port of our storage SCP (the PACS sends here)."
    )
    move_wait_s: float = Field(
        default=30.0, gt=0, description="dimse, retrieve move: wait this long for instances after the C-MOVE answer."
    )
    bind: str = Field(default="127.0.0.1", description="listener and C-MOVE destination: address to listen on.")
    ae_title: AETitle = Field(default="MEDFLOW", description="listener: our AE title.")
    allow_ae: list[AETitle] = Field(
        default_factory=list, description="listener: calling AE titles accepted (empty: any AE title)."
    )
    allow_hosts: list[str] = Field(
        default_factory=lambda: list(LOOPBACK), description="listener: peer addresses or networks (CIDR) accepted."
    )
    quiet_seconds: float = Field(
        default=60.0, gt=0, description="listener: a study is complete after this long without a new instance."
    )
    modalities: list[Modality] = Field(
        default_factory=list, description="listener: route only these modalities to ingest (empty: all)."
    )
    stow_port: int | None = Field(default=None, ge=1, le=65535, description="listener: STOW-RS port (none: off).")
    tls: TlsConfig | None = Field(default=None, description="listener: TLS for DIMSE and STOW-RS.")
    max_associations: int = Field(default=8, ge=1, description="listener: concurrent associations (and requests).")
    max_staged_bytes: int = Field(
        default=20 * 1024**3, ge=1, description="listener: refuse new instances while this much is staged."
    )
    journal_mb: int = Field(
        default=128,
        ge=8,
        le=64 * 1024,
        description="listener: size of the write-ahead journal (MiB, allocated on first start): a burst this size "
        "is acknowledged before its files are staged.",
    )
    credentials_env: str | None = Field(
        default=None, description="dicomweb: name of an environment variable holding 'user:password' (HTTP basic)."
    )
    filters: dict[str, str] = Field(
        default_factory=dict, description="Study-level query keys (keyword → value), e.g. ModalitiesInStudy: US."
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    @field_validator("allow_hosts")
    @classmethod
    def _networks(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            try:
                ipaddress.ip_network(host, strict=False)
            except ValueError:
                raise ValueError("allow_hosts takes IP addresses or networks (CIDR), e.g. 10.0.0.0/8") from None
        return hosts

    @model_validator(mode="after")
    def _required_fields(self) -> SourceConfig:
        missing = {
            SourceKind.FOLDER: [f for f in ("path",) if getattr(self, f) is None],
            SourceKind.DICOMWEB: [f for f in ("url",) if getattr(self, f) is None],
            SourceKind.DIMSE: [f for f in ("host", "port") if getattr(self, f) is None]
            + (["move_port"] if self.retrieve is RetrieveMode.MOVE and self.move_port is None else []),
            SourceKind.LISTENER: [f for f in ("port",) if getattr(self, f) is None],
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
