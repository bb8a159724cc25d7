"""Prefect flow ``export``: send a dataset's de-identified DICOM (all, or a selection) by STOW-RS or C-STORE.

The dataset and the selection are location names (:mod:`tasks.locations`); the endpoint is an address, not a place
on disk. The result holds counts only.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.redact import redacted_errors
from tasks.locations import LocationKind, LocationName, Locations


@flow(name="export", persist_result=False)
def export(dataset: LocationName, to: str, url: str | None = None, host: str | None = None, port: int | None = None,
           called_aet: str = "ANY-SCP", calling_aet: str = "MEDFLOW", selection: LocationName | None = None
           ) -> dict[str, Any]:  # fmt: skip
    """Send the files; return how many were selected, sent and failed (by reason)."""
    with redacted_errors("export"):
        from tasks.errors import ConfigError
        from tasks.export.selection import deid_files
        from tasks.export.send import Protocol, Target, send

        locations = Locations.from_settings()
        root = locations.path(LocationKind.DATASET, dataset)
        chosen = locations.path(LocationKind.LABELS, selection) if selection else None
        try:
            protocol = Protocol(to)
        except ValueError:
            raise ConfigError("--to takes dicomweb or dimse") from None
        target = Target(protocol, url, host, port, called_aet, calling_aet).check()
        files = deid_files(root, chosen)
        result = send(files, target)
    summary = {"dataset": dataset, "to": to, "selected": len(files), "sent": result.sent, "failed": result.failed,
               "failures": result.failures}  # fmt: skip
    get_run_logger().info("export: %d of %d files sent, %d failed", result.sent, len(files), result.failed)
    return summary
