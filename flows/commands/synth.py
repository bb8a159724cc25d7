"""``medflow synth OUT --patients N``: write a synthetic echo cohort (DICOM + outcomes.csv)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def command(
    out: Annotated[Path, typer.Argument(help="Output folder (gets dicom/, outcomes.csv, README.txt).")],
    patients: Annotated[int, typer.Option("--patients", min=1, help="Number of synthetic patients.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed writes the same files.")] = 0,
    volume_every: Annotated[
        int, typer.Option("--volume-every", min=0, help="A CT/MR series every N patients (0: none).")
    ] = 8,
) -> None:
    """Synthetic echo cohort with real-looking (invented) PHI, for running the pipeline end to end offline."""
    from rich.console import Console
    from rich.progress import Progress

    from tasks.synth import make_cohort

    console = Console(stderr=True)
    if out.exists() and any(out.iterdir()):
        console.print(f"[red]error:[/red] {out} is not empty; choose a new folder so cohorts do not mix")
        raise typer.Exit(2)
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("synthesising", total=patients)
        summary = make_cohort(out, patients, seed, volume_every=volume_every,
                              progress=lambda n: progress.update(bar, completed=n))  # fmt: skip
    s = summary.as_dict()
    console.print(
        f"{s['patients']} patients: {s['echo_files']} echo files (JPEG {s['jpeg_files']}, RLE {s['rle_files']}, "
        f"native {s['native_files']}), {s['volume_series']} volume series ({s['volume_files']} slices), "
        f"{s['events']} events -> {out}"
    )
