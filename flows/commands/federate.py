"""``medflow federate --site DATASET LABELS.csv --site ... --task ...``: federated training across sites (NVIDIA FLARE
simulator: the server and one process per site on loopback), run as the Prefect flow ``federate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def command(
    site: Annotated[
        list[str], typer.Option("--site", help="DATASET:LABELS.csv of one site (repeat, at least two).")
    ],
    task: Annotated[str, typer.Option("--task", help="regression | classification | survival (coxph)")],
    target_col: Annotated[str | None, typer.Option("--target-col", help="Classification/regression target.")] = None,
    id_col: Annotated[str, typer.Option("--id-col", help="Labels column with the pseudonymous id.")] = "patient_id",
    start_col: Annotated[str | None, typer.Option("--start-col", help="Survival: start date column.")] = None,
    end_col: Annotated[str | None, typer.Option("--end-col", help="Survival: event/censoring date column.")] = None,
    event_col: Annotated[str | None, typer.Option("--event-col", help="Survival: 1 event, 0 censored.")] = None,
    head: Annotated[str | None, typer.Option("--head", help="softmax|evidential; coxph")] = None,
    backbone: Annotated[str, typer.Option("--backbone", help="See `medflow train --help`.")] = "r2plus1d_18",
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Federated rounds.")] = 5,
    local_epochs: Annotated[int, typer.Option("--local-epochs", min=1, help="Epochs per site per round.")] = 1,
    local_batches: Annotated[int | None, typer.Option("--local-batches", min=1, help="Batches per site per round "
                             "(default: whole epochs); fewer limit client drift when sites' labels differ.")] = None,
    algorithm: Annotated[str, typer.Option("--algorithm", help="fedavg | fedprox")] = "fedavg",
    mu: Annotated[float, typer.Option("--mu", help="FedProx proximal weight.")] = 0.01,
    frames: Annotated[int, typer.Option("--frames", min=1)] = 16,
    size: Annotated[int | None, typer.Option("--size", help="Resize clips on the device.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    lr: Annotated[float, typer.Option("--lr")] = 1e-3,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    num_workers: Annotated[int, typer.Option("--num-workers", min=0)] = 0,
) -> None:
    """Each site trains on its own dataset; only weights and aggregate metrics reach the server."""
    from rich.console import Console

    console = Console(stderr=True)
    pairs = [_site(s) for s in site]
    if len(pairs) < 2 or any(p is None for p in pairs):
        console.print("[red]error:[/red] pass at least two --site DATASET:LABELS.csv (existing paths)")
        raise typer.Exit(2)
    from deployments.server import temporary_api
    from flows.federate import SiteLocations, federate
    from tasks.errors import MedflowError
    from tasks.locations import LocationKind, Locations

    locations = Locations.from_settings()
    sites = [SiteLocations(dataset=locations.register(LocationKind.DATASET, d),
                           labels=locations.register(LocationKind.LABELS, lab)) for d, lab in pairs]  # fmt: skip
    options = {k: v for k, v in dict(target_col=target_col, id_col=id_col, start_col=start_col, end_col=end_col,
               event_col=event_col, head=head, backbone=backbone, frames=frames, size=size, batch_size=batch_size,
               lr=lr, seed=seed, num_workers=num_workers).items() if v is not None}  # fmt: skip
    try:
        with temporary_api():
            summary = federate(sites, task, options, rounds, local_epochs, algorithm, mu, local_batches)
    except MedflowError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    for record in summary["rounds"]:
        console.print(f"round {record['round'] + 1}: {record['metrics']}")
    for name, result in summary["sites"].items():
        console.print(f"{name}: {result['metrics']} (run {summary['run_id']})")


def _site(text: str) -> tuple[Path, Path] | None:
    dataset, sep, labels = text.rpartition(":")
    if not sep or not Path(dataset).is_dir() or not Path(labels).is_file():
        return None
    return Path(dataset), Path(labels)
