"""One entry point for every source kind: fetch what is new into the staging folder."""

from __future__ import annotations

from pathlib import Path

from tasks.errors import ConfigError
from tasks.sources.config import SourceConfig, SourceKind
from tasks.sources.seen import SeenInstances
from tasks.sources.staging import FetchResult


def fetch_new(config: SourceConfig, staging: Path, seen: SeenInstances) -> FetchResult:
    """Stage the instances of ``config`` that ``seen`` does not hold; folder sources are read in place."""
    if config.kind is SourceKind.DICOMWEB:
        from tasks.sources.dicomweb import fetch_dicomweb

        return fetch_dicomweb(config, staging, seen)
    if config.kind is SourceKind.DIMSE:
        from tasks.sources.dimse import fetch_dimse

        return fetch_dimse(config, staging, seen)
    if config.kind is SourceKind.LISTENER:
        raise ConfigError(
            f"source {config.name} is a listener: instances are pushed to it (medflow listen / medflow serve), "
            "not fetched"
        )
    return FetchResult(source=config.name, staging=Path(str(config.path)))
