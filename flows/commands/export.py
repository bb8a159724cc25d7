"""``medflow export DATASET --to dicomweb|dimse``: run the Prefect flow ``export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def command(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder ingested with --keep-deid.")],
    to: Annotated[str, typer.Option("--to", help="dicomweb (STOW-RS) or dimse (C-STORE).")],
    url: Annotated[str | None, typer.Option("--url", help="DICOMweb base URL (…/dicom-web).")] = None,
    host: Annotated[str | None, typer.Option("--host", help="DIMSE peer host.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="DIMSE peer port.")] = None,
    called_aet: Annotated[str, typer.Option("--called-aet", help="DIMSE peer AE title.")] = "ANY-SCP",
    calling_aet: Annotated[str, typer.Option("--calling-aet", help="Our AE title.")] = "MEDFLOW",
    selection: Annotated[
        Path | None, typer.Option("--selection", help="CSV of patient_id/study_id/series_id/instance_id to send.")
    ] = None,
) -> None:
    """Send the de-identified DICOM of DATASET (or a selection of it) to an annotation tool or PACS."""
    from rich.console import Console

    from tasks.errors import MedflowError

    console = Console(stderr=True)
    if not (dataset / "manifest.parquet").exists():
        console.print("[red]error:[/red] DATASET has no manifest.parquet; run `medflow ingest --keep-deid` first")
        raise typer.Exit(2)
    from deployments.server import temporary_api
    from flows.export import export
    from tasks.locations import LocationKind, Locations

    locations = Locations.from_settings()
    chosen = locations.register(LocationKind.LABELS, selection) if selection else None
    try:
        with temporary_api():
            summary = export(locations.register(LocationKind.DATASET, dataset), to, url, host, port, called_aet,
                             calling_aet, chosen)  # fmt: skip
    except MedflowError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"export: {summary['sent']} of {summary['selected']} files sent, {summary['failed']} failed "
                  f"{summary['failures'] or ''}")  # fmt: skip
    if summary["failed"]:
        raise typer.Exit(1)
