"""``medflow labels import-mdai EXPORT.json --dataset DIR``: run the Prefect flow ``import-mdai``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.commands.options import KeyFile

app = typer.Typer(help="Expert labels from annotation tools, joined to a dataset through its pseudonyms.",
                  no_args_is_help=True)  # fmt: skip


@app.command("import-mdai")
def import_mdai(
    export: Annotated[Path, typer.Argument(help="MD.ai annotation export (JSON).")],
    dataset: Annotated[Path, typer.Option("--dataset", help="Dataset folder (store.zarr, manifest.parquet).")],
    key_file: KeyFile = None,
) -> None:
    """Labels → DATASET/labels/mdai-labels.csv (for `medflow train --task classification --target-col GROUP`);
    boxes and masks → OME-Zarr labels next to the images. Rows that match no image are refused and counted."""
    from rich.console import Console

    from tasks.errors import MedflowError

    console = Console(stderr=True)
    if not export.is_file() or not (dataset / "manifest.parquet").exists():
        console.print("[red]error:[/red] pass an MD.ai export file and a dataset folder made by `medflow ingest`")
        raise typer.Exit(2)
    from deployments.server import temporary_api
    from flows.labels import import_mdai_labels
    from tasks.locations import LocationKind, Locations

    locations = Locations.from_settings()
    names = {"export": locations.register(LocationKind.LABELS, export),
             "dataset": locations.register(LocationKind.DATASET, dataset),
             "key_file": locations.register(LocationKind.KEY, key_file) if key_file else None}  # fmt: skip
    try:
        with temporary_api():
            summary = import_mdai_labels(**names)
    except MedflowError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"MD.ai: {summary['accepted']} of {summary['rows']} rows accepted ({summary['matched_by']}), "
                  f"refused {summary['refused']}; {summary['patients']} patients × {summary['label_groups']} label "
                  f"groups, {summary['regions']} boxes/masks in {summary['label_images']} label images")  # fmt: skip
    console.print(f"labels table -> {locations.path(LocationKind.LABELS, summary['labels'])}")
