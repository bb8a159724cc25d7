"""``medflow deid-table IN.csv OUT.csv``: pseudonymise a clinical table with the images' key and date offsets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _split(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def command(
    table_in: Annotated[Path, typer.Argument(help="Input CSV (MRNs, dates, outcomes).")],
    table_out: Annotated[Path, typer.Argument(help="Output CSV (only the columns named below) + OUT.csv.deid.json.")],
    id_col: Annotated[str, typer.Option("--id-col", help="Column with the PatientID the images carry.")],
    date_cols: Annotated[str, typer.Option("--date-cols", help="Comma-separated date columns to shift.")] = "",
    keep: Annotated[
        str, typer.Option("--keep", help="Comma-separated columns to keep as they are (e.g. event,ef,sex,group).")
    ] = "",
    age_cols: Annotated[
        str, typer.Option("--age-cols", help="Comma-separated age columns to keep, ages over 89 written as 90.")
    ] = "",
    force_keep: Annotated[
        str, typer.Option("--force-keep", help="Kept columns to keep even though their values look identifying.")
    ] = "",
    key_file: Annotated[Path | None, typer.Option("--key-file", help="Key file (else MEDFLOW_DEID_KEY).")] = None,
) -> None:
    """Keep only the id (pseudonymised), dates (shifted), ages (capped) and --keep columns; drop every other one."""
    from rich.console import Console

    from tasks.config import load_settings
    from tasks.deid.keys import load_key
    from tasks.deid.pseudonyms import Pseudonymizer
    from tasks.deid.table import deidentify_table, record_path
    from tasks.errors import MedflowError

    console = Console(stderr=True)
    try:
        settings = load_settings(key_file=key_file)
        key = load_key(settings.key_file, settings.deid_key.get_secret_value() if settings.deid_key else None)
        summary = deidentify_table(
            table_in,
            table_out,
            Pseudonymizer(key),
            id_col=id_col,
            date_cols=_split(date_cols),
            keep=_split(keep),
            age_cols=_split(age_cols),
            force_keep=_split(force_keep),
        )
    except MedflowError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(
        f"{summary['rows']} rows written ({summary['dropped_rows']} without an id dropped, "
        f"{summary['ages_capped']} ages capped at 90); kept columns: {', '.join(summary['columns'])}",
        highlight=False,
    )
    console.print(f"dropped columns: {', '.join(summary['dropped_columns']) or 'none'}", highlight=False)
    if summary["forced"]:
        console.print(f"[yellow]kept although they look identifying:[/yellow] {', '.join(summary['forced'])}")
    console.print(f"-> {table_out} (record: {record_path(table_out).name})", highlight=False)
