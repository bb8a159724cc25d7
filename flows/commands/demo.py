"""``medflow demo``: de-identify a curated sample of real DICOM files from pydicom-data and summarise.

Later steps (ingest, train) extend the demo; the de-identification part is the plain function
:func:`run_demo_deid`, which the command calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tasks.synth.sample import DEMO_FILES, stage_sample


def demo_key(key_file: Path | None = None) -> Path:
    """The demo's key file (default ``.medflow/demo.key``), created with mode 0600 on first use."""
    from tasks.deid.keys import write_new_key

    key_file = key_file or Path(".medflow") / "demo.key"
    if not key_file.exists():
        write_new_key(key_file)
    return key_file


def run_demo_deid(
    out: Path, clean_pixels: str = "auto", workers: int = 2, progress: bool = True, key_file: Path | None = None
):
    """Copy the sample into ``out/source``, de-identify it into ``out/deid``; return the run summary.

    The demo key lives in ``key_file`` (default ``.medflow/demo.key``, created on first use), never in the output.
    """
    from tasks.deid.context import DeidContext
    from tasks.deid.folder import deidentify_folder
    from tasks.deid.keys import load_key

    source = stage_sample(out / "source")
    ctx = DeidContext.create(load_key(demo_key(key_file)), clean_pixels=clean_pixels)
    return deidentify_folder(source, out / "deid", ctx, workers=workers, progress=progress)


def print_summary(summary, out: Path) -> None:
    """A rich table of what the de-identification did (pseudonymous values only)."""
    from collections import Counter

    from pydicom import dcmread
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="De-identified instances (pseudonymous)")
    for column in ("patient", "modality", "transfer syntax", "frames", "study date (shifted)"):
        table.add_column(column)
    modalities: Counter = Counter()
    codes: Counter = Counter()
    for path in sorted((out / "deid").rglob("*.dcm")):
        ds = dcmread(path, stop_before_pixels=True)
        modalities[str(ds.get("Modality", "?"))] += 1
        codes.update(i.CodeValue for i in ds.get("DeidentificationMethodCodeSequence", []))
        table.add_row(
            str(ds.get("PatientID", ""))[:8] + "…",
            str(ds.get("Modality", "")),
            ds.file_meta.TransferSyntaxUID.keyword or str(ds.file_meta.TransferSyntaxUID),
            str(ds.get("NumberOfFrames", 1)),
            str(ds.get("StudyDate", "")),
        )
    console.print(table)
    actions = ", ".join(f"{k}={v}" for k, v in sorted(summary.actions.items()))
    reasons = ", ".join(f"{k}={v}" for k, v in summary.reasons.items())
    console.print(
        f"[bold]{summary.written}[/bold] written, {summary.duplicates} duplicates, {summary.skipped} already done, "
        f"[yellow]{summary.quarantined} quarantined[/yellow] ({reasons}) of {summary.files} files in "
        f"{summary.seconds:.1f}s"
    )
    console.print(f"CID 7050 codes (instances): {dict(sorted(codes.items()))}")
    console.print(f"actions applied: {actions}")
    console.print(f"modalities: {dict(modalities)}")
    console.print(f"output: {out / 'deid'}  (ledger: deid-inputs.jsonl, rejects: quarantine.jsonl)")


def command(
    out: Annotated[Path, typer.Option("--out", help="Demo output folder.")] = Path("demo-output"),
    patients: Annotated[int, typer.Option("--patients", help="Synthetic echo patients to add.")] = 80,
    port: Annotated[int, typer.Option("--port", help="Port of the local Prefect server.")] = 4200,
    deid_only: Annotated[bool, typer.Option("--deid-only", help="Only de-identify the real sample files.")] = False,
    clean_pixels: Annotated[str, typer.Option("--clean-pixels", help="auto, on or off (with --deid-only).")] = "auto",
) -> None:
    """Run medflow end to end on bundled data: local Prefect server, ingest, train, evaluate; say where to look.

    The server stays up after the demo so the dashboard shows every run; stop it with the printed command.
    """
    if deid_only:
        summary = run_demo_deid(out, clean_pixels=clean_pixels)
        print_summary(summary, out)
        return
    import os

    from rich.console import Console

    from deployments.server import is_healthy, local_server, start
    from tasks.config import load_settings

    console = Console()
    settings = load_settings()
    server = local_server(settings.state_dir, port=port)
    pid = None
    if is_healthy(server.api_url):
        console.print(f"using the Prefect server already running at {server.dashboard_url}")
    else:
        console.print(f"starting the local Prefect server (home {server.home}) …")
        process = start(server, log_path=server.home / "server.log")
        pid = process.pid
    os.environ.update(PREFECT_API_URL=server.api_url)  # before Prefect is imported: flows and workers use it
    from flows.demo import demo
    from tasks.locations import LocationKind, Locations

    locations = Locations.from_settings(settings)
    key_file = locations.register(LocationKind.KEY, demo_key())
    console.print(f"demo: {patients} synthetic echo patients + {len(DEMO_FILES)} real pydicom-data files → {out}")
    result = demo(locations.register(LocationKind.OUTPUT, out), key_file, patients=patients)
    ingest = result["ingest"]
    console.rule("[bold]medflow demo finished")
    console.print(
        f"ingest: discovered {ingest['discovered']} = stored {ingest['stored']} + skipped {ingest['skipped']}"
        f" + quarantined {ingest['quarantined']}"
    )
    shown = {k: v for k, v in result["metrics"].items() if isinstance(v, int | float)}
    console.print("metrics: " + ", ".join(f"{k}={v:.3f}" for k, v in list(shown.items())[:8]))
    console.print(f"dashboard: [link]{server.dashboard_url}[/link]  (flow runs, logs, artifacts)")
    console.print(f"dataset:   {out / 'dataset'}  (store.zarr, manifest.parquet, qc/)")
    console.print(f"report:    {out / 'dataset' / 'runs' / result['run_id'] / 'report.html'}")
    if pid is not None:
        console.print(f"the server keeps running for the dashboard; stop it with: kill {pid}")
