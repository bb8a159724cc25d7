"""``medflow deid SOURCE OUTPUT``: de-identify a folder of DICOM files (PS3.15 Annex E, keyed pseudonyms)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.commands.options import CleanPixels, KeyFile, OcrEngine, OcrEveryFrame, Workers


def command(
    source: Annotated[Path, typer.Argument(help="Folder of DICOM files (read only, searched recursively).")],
    output: Annotated[Path, typer.Argument(help="Output folder: <patient>/<study>/<series>/<instance>.dcm.")],
    key_file: KeyFile = None,
    workers: Workers = None,
    clean_pixels: CleanPixels = None,
    ocr_every_frame: OcrEveryFrame = False,
    ocr_engine: OcrEngine = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            help="Profile option, repeatable: retain-longitudinal-modified-dates (default), "
            "retain-patient-characteristics (default), clean-descriptors, retain-device-identity, "
            "retain-institution-identity, retain-safe-private, retain-uids, retain-longitudinal-full-dates, "
            "retain-unknown-attributes (medflow's: keep public attributes the data dictionary does not know).",
        ),
    ] = None,
    no_default_options: Annotated[
        bool, typer.Option("--no-default-options", help="Start from the bare Basic Profile (no default options).")
    ] = False,
) -> None:
    """De-identify every file under SOURCE into OUTPUT; bad inputs go to OUTPUT/quarantine.jsonl."""
    from rich.console import Console

    from tasks.config import load_settings
    from tasks.deid.context import DeidContext
    from tasks.deid.folder import deidentify_folder
    from tasks.deid.keys import load_key
    from tasks.deid.options import parse_options
    from tasks.errors import MedflowError
    from tasks.pixels.options import PixelOptions

    console = Console(stderr=True)
    try:
        settings = load_settings(
            workers=workers,
            clean_pixels=clean_pixels,
            key_file=key_file,
            ocr_every_frame=ocr_every_frame or None,  # unset: MEDFLOW_OCR_EVERY_FRAME decides
            ocr_engine=ocr_engine,
        )
        key = load_key(settings=settings)
        options = parse_options(option or [], defaults=not no_default_options)
        ctx = DeidContext.create(
            key,
            options=options,
            clean_pixels=settings.clean_pixels,
            pixel_options=PixelOptions.from_settings(settings),
            max_pixel_bytes=settings.max_pixel_bytes,
        )
        summary = deidentify_folder(
            source, output, ctx, workers=settings.workers, progress=True, file_timeout_s=settings.file_timeout_s
        )
    except MedflowError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    except ValueError:
        console.print("[red]error:[/red] invalid setting; --clean-pixels takes auto, on or off")
        raise typer.Exit(2) from None
    console.print(
        f"[green]{summary.written} written[/green], {summary.skipped} skipped (already done), "
        f"{summary.duplicates} duplicates, [yellow]{summary.quarantined} quarantined[/yellow] "
        f"of {summary.files} files in {summary.seconds:.1f}s -> {summary.output}"
    )
    if summary.reasons:
        console.print("quarantine reasons: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.reasons.items())))
