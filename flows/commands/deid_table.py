"""``medflow deid-table IN.csv OUT.csv``: pseudonymise a clinical table with the images' key and date offsets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def command(
    table_in: Annotated[Path, typer.Argument(help="Input CSV (MRNs, dates, outcomes).")],
    table_out: Annotated[Path, typer.Argument(help="Output CSV (pseudonymous ids, shifted dates).")],
    id_col: Annotated[str, typer.Option("--id-col", help="Column with the PatientID the images carry.")],
    date_cols: Annotated[str, typer.Option("--date-cols", help="Comma-separated date columns to shift.")] = "",
    drop_cols: Annotated[str, typer.Option("--drop-cols", help="Comma-separated columns to drop.")] = "",
    key_file: Annotated[Path | None, typer.Option("--key-file", help="Key file (else MEDFLOW_DEID_KEY).")] = None,
) -> None:
    """IDs become the images' pseudonymous PatientID, dates move by the same per-patient offset, names are dropped."""
    from rich.console import Console

    from tasks.config import load_settings
    from tasks.deid.keys import load_key
    from tasks.deid.pseudonyms import Pseudonymizer
    from tasks.deid.table import deidentify_table
    from tasks.errors import MedflowError

    def split(text: str) -> list[str]:
        return [c.strip() for c in text.split(",") if c.strip()]

    console = Console(stderr=True)
    try:
        settings = load_settings(key_file=key_file)
        key = load_key(settings=settings)
        summary = deidentify_table(
            table_in,
            table_out,
            Pseudonymizer(key),
            id_col=id_col,
            date_cols=split(date_cols),
            drop_cols=split(drop_cols),
        )
    except MedflowError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(
        f"{summary['rows']} rows written ({summary['dropped_rows']} without an id dropped); "
        f"dropped columns: {', '.join(summary['dropped_columns']) or 'none'} -> {table_out}"
    )
