"""``medflow audit DATASET [--originals SOURCE]``: search a dataset for identifying values of its originals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def command(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (output of ingest or deid).")],
    originals: Annotated[
        Path | None, typer.Option("--originals", help="Folder of the original DICOM files the dataset came from.")
    ] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report to this file.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the JSON report on stdout.")] = False,
    ocr: Annotated[bool, typer.Option("--ocr/--no-ocr", help="Read text left in stored frames.")] = True,
    ocr_frames: Annotated[int, typer.Option("--ocr-frames", min=1, help="Frames read per array.")] = 3,
    ocr_max_arrays: Annotated[
        int | None, typer.Option("--ocr-max-arrays", min=0, help="Read at most this many arrays (default: all).")
    ] = None,
    prefect_db: Annotated[
        bool,
        typer.Option(
            "--prefect-db/--no-prefect-db",
            help="Also search the local Prefect server's database (SQLite file and WAL under PREFECT_HOME).",
        ),
    ] = True,
    retain: Annotated[
        list[str] | None,
        typer.Option(
            "--retain",
            help="De-identification option whose retained (K) attributes are not identifying "
            "(repeatable; default: retain-patient-characteristics).",
        ),
    ] = None,
) -> None:
    """Scan every file under DATASET for the identifying values of the originals; exit 1 on any finding.

    Findings name the file and the attribute, never the value.
    """
    from rich.console import Console
    from rich.markup import escape

    from tasks.atomic import atomic_write_bytes
    from tasks.audit import audit_dataset
    from tasks.audit.collect import DEFAULT_RETAINED
    from tasks.errors import MedflowError

    console = Console(stderr=True)
    if not dataset.is_dir():
        console.print("[red]error:[/] DATASET is not a folder; remedy: pass the folder ingest wrote.")
        raise typer.Exit(2)
    if originals is not None and not originals.exists():
        console.print("[red]error:[/] --originals does not exist; remedy: pass the source folder of the run.")
        raise typer.Exit(2)
    try:
        with console.status("auditing"):
            result = audit_dataset(
                dataset,
                originals,
                ocr=ocr,
                ocr_frames=ocr_frames,
                ocr_max_arrays=ocr_max_arrays,
                retained=frozenset(retain) if retain else DEFAULT_RETAINED,
                prefect_database=prefect_db,
            )
    except MedflowError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    text = result.to_json()
    if report is not None:
        atomic_write_bytes(report, text.encode())
    if json_out:
        typer.echo(text)
    for f in result.findings:
        where = escape(f"{f.path} [{f.where}]")
        console.print(f"[red]finding[/] {f.kind}: {where} {escape(', '.join(f.attributes))} x{f.count}")
    console.print(
        f"audit: {result.files_scanned} files, {result.bytes_scanned} bytes, {result.patterns} patterns from "
        f"{result.originals_read} originals ({result.originals_unreadable} unreadable), {result.arrays_ocr} arrays "
        "read by OCR, Prefect database "
        f"{result.prefect_database}: "
        + ("[green]no findings[/]" if result.ok else f"[red]{len(result.findings)} findings[/]")
    )
    if not result.ok:
        raise typer.Exit(1)
