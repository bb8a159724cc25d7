"""``medflow pretrain DATASET``: run the Prefect flow ``pretrain`` (self-supervised, no labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def command(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (store.zarr, manifest.parquet).")],
    methods: Annotated[
        str, typer.Option("--methods", help="Comma-separated proxy tasks: rotation, jigsaw, contrastive.")
    ] = "contrastive",
    backbone: Annotated[
        str, typer.Option("--backbone", help="r2plus1d_18|r3d_18|mc3_18|cnn3d|framewise_resnet18|framewise_cnn2d")
    ] = "r2plus1d_18",
    kind: Annotated[str, typer.Option("--kind", help="video (training views) or volume.")] = "video",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 10,
    frames: Annotated[int, typer.Option("--frames", min=1, help="Frames per clip.")] = 16,
    stride: Annotated[int, typer.Option("--stride", min=1, help="Take every n-th frame of the view.")] = 1,
    size: Annotated[int | None, typer.Option("--size", help="Resize clips on the device (e.g. 32 on a CPU).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="Contrastive negatives: 2N-2.")] = 16,
    lr: Annotated[float, typer.Option("--lr")] = 1e-3,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    num_workers: Annotated[int, typer.Option("--num-workers", min=0)] = 2,
    precision: Annotated[
        str | None, typer.Option("--precision", help="Default bf16-mixed on GPU, 32-true on CPU.")
    ] = None,
) -> None:
    """Pretrain a backbone on every QC-passed array of DATASET; write DATASET/pretrain/<run-id>/backbone.pt,
    which `medflow train --weights` fine-tunes from."""
    import logging

    from rich.console import Console

    from tasks.errors import MedflowError

    console = Console(stderr=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not (dataset / "manifest.parquet").exists():
        console.print("[red]error:[/red] DATASET has no manifest.parquet; run `medflow ingest` first")
        raise typer.Exit(2)
    from deployments.server import temporary_api
    from flows.pretrain import pretrain
    from tasks.locations import LocationKind, Locations

    locations = Locations.from_settings()
    options = {"methods": [m.strip() for m in methods.split(",") if m.strip()], "backbone": backbone, "kind": kind,
               "epochs": epochs, "frames": frames, "stride": stride, "size": size, "batch_size": batch_size, "lr": lr,
               "seed": seed, "num_workers": num_workers, "precision": precision}  # fmt: skip
    try:
        with temporary_api():
            summary = pretrain(locations.register(LocationKind.DATASET, dataset), options)
    except (MedflowError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    checkpoint = locations.path(LocationKind.WEIGHTS, summary["weights"])
    shown = ", ".join(f"{k}={v:.3f}" for k, v in summary["metrics"].items() if k.startswith("val_"))
    console.print(f"pretrained {summary['run_id']} ({shown}) -> {checkpoint}")
    console.print(f"fine-tune with: medflow train DATASET --weights {checkpoint} --backbone {backbone} ...")
