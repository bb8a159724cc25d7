"""``medflow ingest SOURCE --dataset DIR``: run the Prefect flow ``ingest`` with a progress bar."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated

import typer

from flows.commands.options import CleanPixels, KeyFile, OcrEngine, OcrEveryFrame, Workers


def _count_run_lines(ledger: Path, run_id: str, offset: int) -> int:
    if not ledger.exists():
        return 0
    with ledger.open("rb") as fh:
        fh.seek(offset)
        return sum(1 for line in fh if run_id.encode() in line)


def _watch(dataset: Path, run_id: str, stop: threading.Event) -> None:
    """Rich progress bar fed by the run's plan (files) and its ledger lines (inputs finished)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tasks.ingest.folder import run_plan
    from tasks.ingest.ledger import LEDGER_FILE

    ledger = dataset / LEDGER_FILE
    offset = ledger.stat().st_size if ledger.exists() else 0
    with Progress(
        TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as progress:
        bar = progress.add_task("ingest", total=None)
        while not stop.wait(0.5):
            plan = run_plan(dataset, run_id)
            if plan:
                progress.update(bar, total=plan["files"], completed=_count_run_lines(ledger, run_id, offset))


def command(
    source: Annotated[Path, typer.Argument(help="Folder of DICOM files (read only, searched recursively).")],
    dataset: Annotated[Path, typer.Option("--dataset", help="Dataset folder (created if missing).")],
    key_file: KeyFile = None,
    workers: Workers = None,
    dask_address: Annotated[
        str | None, typer.Option("--dask-address", help="Run the batch tasks on this Dask scheduler (tcp://HOST:PORT).")
    ] = None,
    clean_pixels: CleanPixels = None,
    target_fps: Annotated[float, typer.Option("--target-fps", min=1.0, help="Frame rate of training views.")] = 50.0,
    view_size: Annotated[int, typer.Option("--view-size", min=16, help="Side of the square training view.")] = 112,
    max_failure_share: Annotated[
        float, typer.Option("--max-qc-failure-share", min=0.0, max=1.0, help="Fail the run above this QC share.")
    ] = 0.25,
    audit: Annotated[
        bool, typer.Option("--audit/--no-audit", help="PHI audit of the dataset against SOURCE at the end.")
    ] = True,
    audit_ocr: Annotated[
        bool, typer.Option("--audit-ocr", help="Also OCR stored frames in that audit (about 1 s per frame).")
    ] = False,
    ocr_every_frame: OcrEveryFrame = False,
    ocr_engine: OcrEngine = None,
    keep_deid: Annotated[
        bool, typer.Option("--keep-deid", help="Also keep the de-identified DICOM under DATASET/deid/ (for export).")
    ] = False,
) -> None:
    """De-identify, normalise, store and check every file under SOURCE into the dataset at --dataset."""
    from rich.console import Console

    from tasks.config import CleanPixelsMode, load_settings
    from tasks.errors import MedflowError

    console = Console(stderr=True)
    if not source.exists():
        console.print("[red]error:[/red] SOURCE does not exist; pass a folder of DICOM files")
        raise typer.Exit(2)
    if clean_pixels is not None and clean_pixels not in {m.value for m in CleanPixelsMode}:
        console.print("[red]error:[/red] --clean-pixels takes auto, on or off")
        raise typer.Exit(2)
    try:  # before a server starts: an unknown engine is a usage error, not a failed run
        from tasks.pixels.options import PixelOptions

        PixelOptions.from_settings(load_settings(ocr_engine=ocr_engine))
    except MedflowError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    from deployments.server import temporary_api
    from flows.ingest import ingest
    from tasks.ingest.folder import new_run_id
    from tasks.locations import LocationKind, Locations

    settings = load_settings(workers=workers)
    locations = Locations.from_settings(settings)
    names = {  # the flow sees handles only: an export folder is often named after its patient
        "source": locations.register(LocationKind.SOURCE, source),
        "dataset": locations.register(LocationKind.DATASET, dataset),
        "key_file": locations.register(LocationKind.KEY, key_file) if key_file else None,
    }
    run_id = new_run_id()
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(dataset, run_id, stop), daemon=True)
    watcher.start()
    try:
        with temporary_api():
            summary = ingest(
                **names,
                workers=settings.workers,
                dask_address=dask_address,
                clean_pixels=clean_pixels,
                target_fps=target_fps,
                view_size=view_size,
                max_failure_share=max_failure_share,
                run_id=run_id,
                audit=audit,
                audit_ocr=audit_ocr,
                ocr_every_frame=ocr_every_frame or None,  # unset: MEDFLOW_OCR_EVERY_FRAME decides
                ocr_engine=ocr_engine,
                keep_deid=keep_deid,
            )
    except MedflowError as error:
        stop.set()
        watcher.join()
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    except RuntimeError as error:
        stop.set()
        watcher.join()
        if "Prefect API" not in str(error):
            raise
        console.print(
            "[red]error:[/red] cannot reach a Prefect API server; run `medflow server` and set PREFECT_API_URL"
        )
        raise typer.Exit(2) from None
    stop.set()
    watcher.join()
    console.print(
        f"discovered {summary['discovered']} = [green]stored {summary['stored']}[/green] + skipped "
        f"{summary['skipped']} + [yellow]quarantined {summary['quarantined']}[/yellow]; "
        f"{summary['arrays_written']} arrays written, manifest {summary['manifest_rows']} rows, "
        f"QC failed {summary['qc_failed_rows']} rows -> {dataset}"
    )
    if summary.get("audit_findings") is not None:
        console.print(f"PHI audit: {summary['audit_findings']} findings in {summary['audit_files_scanned']} files")
    if summary["quarantine_reasons"]:
        console.print("quarantine reasons: " + json.dumps(summary["quarantine_reasons"], sort_keys=True))
