"""``medflow train DATASET --labels LABELS.csv --task ...``: train a video/volume model on a stored dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def command(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (store.zarr, manifest.parquet).")],
    labels: Annotated[Path, typer.Option("--labels", help="De-identified labels CSV (pseudonymous ids).")],
    task: Annotated[str, typer.Option("--task", help="survival | classification | regression")],
    id_col: Annotated[
        str, typer.Option("--id-col", help="Labels column with the pseudonymous patient id.")
    ] = "patient_id",
    start_col: Annotated[str | None, typer.Option("--start-col", help="Survival: start date column.")] = None,
    end_col: Annotated[str | None, typer.Option("--end-col", help="Survival: event/censoring date column.")] = None,
    event_col: Annotated[str | None, typer.Option("--event-col", help="Survival: 1 event, 0 censored.")] = None,
    target_col: Annotated[str | None, typer.Option("--target-col", help="Classification/regression target.")] = None,
    head: Annotated[
        str | None, typer.Option("--head", help="coxph|logistic-hazard|deephit; softmax|evidential")
    ] = None,
    backbone: Annotated[
        str, typer.Option("--backbone", help="r2plus1d_18|r3d_18|mc3_18|cnn3d|framewise_resnet18|framewise_cnn2d")
    ] = "r2plus1d_18",
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="Local pretrained weights: `medflow pretrain`'s backbone.pt or a state dict."),
    ] = None,
    tabular: Annotated[str, typer.Option("--tabular", help="Comma-separated covariates fused into the head.")] = "",
    kind: Annotated[str, typer.Option("--kind", help="video (training views) or volume.")] = "video",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 10,
    frames: Annotated[int, typer.Option("--frames", min=1, help="Frames per clip.")] = 16,
    stride: Annotated[int, typer.Option("--stride", min=1, help="Take every n-th frame of the view.")] = 1,
    size: Annotated[int | None, typer.Option("--size", help="Resize clips on the device (e.g. 56 on a CPU).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    lr: Annotated[float, typer.Option("--lr")] = 1e-3,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    num_workers: Annotated[int, typer.Option("--num-workers", min=0)] = 2,
    test_clips: Annotated[int, typer.Option("--test-clips", min=1, help="Clips per test instance, averaged.")] = 4,
    cox_memory: Annotated[
        int, typer.Option("--cox-memory", min=0, help="Cox: batches of risk sets remembered (0: in-batch).")
    ] = 0,
    fairness_penalty: Annotated[
        str | None, typer.Option("--fairness-penalty", help="demographic-parity | equalized-odds")
    ] = None,
    group_col: Annotated[
        str | None, typer.Option("--group-col", help="Labels column with the protected group.")
    ] = None,
    fairness_weight: Annotated[float, typer.Option("--fairness-weight", help="λ of the fairness penalty.")] = 0.0,
    precision: Annotated[
        str | None, typer.Option("--precision", help="Default bf16-mixed on GPU, 32-true on CPU.")
    ] = None,
    patience: Annotated[int, typer.Option("--patience", help="Early-stopping patience (epochs).")] = 10,
    devices: Annotated[
        str, typer.Option("--devices", help="auto (every GPU), a count, or GPU indices '0,1'; >1: torchrun ranks.")
    ] = "auto",
    accelerator: Annotated[str, typer.Option("--accelerator", help="auto | gpu | cpu")] = "auto",
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Run directory to continue from its last.ckpt.")
    ] = None,
    label_fraction: Annotated[
        float, typer.Option("--label-fraction", min=0.0, max=1.0, help="Share of training patients' labels used.")
    ] = 1.0,
    evaluate: Annotated[
        bool, typer.Option("--evaluate/--no-evaluate", help="Run `medflow evaluate` on the new run at the end.")
    ] = True,
) -> None:
    """Train, checkpoint (best + last), predict the test split, write DATASET/runs/<run-id>/, then evaluate it."""
    import logging

    from rich.console import Console

    from models.training import TrainConfig, train_model
    from tasks.errors import MedflowError

    console = Console(stderr=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not (dataset / "manifest.parquet").exists():
        console.print(f"[red]error:[/red] {dataset} has no manifest.parquet; run `medflow ingest` first")
        raise typer.Exit(2)
    cfg = TrainConfig(
        dataset=str(dataset), labels=str(labels), task=task, id_col=id_col, start_col=start_col, end_col=end_col,
        event_col=event_col, target_col=target_col, head=head, backbone=backbone,
        weights=str(weights) if weights else None, tabular=[c.strip() for c in tabular.split(",") if c.strip()],
        kind=kind, epochs=epochs, frames=frames, stride=stride, size=size, batch_size=batch_size, lr=lr, seed=seed,
        num_workers=num_workers, test_clips=test_clips, cox_memory=cox_memory, fairness_penalty=fairness_penalty,
        group_col=group_col, fairness_weight=fairness_weight, precision=precision, patience=patience,
        resume=str(resume) if resume else None, devices=devices, accelerator=accelerator,
        label_fraction=label_fraction,
    )  # fmt: skip
    try:
        console.print(placement_note(cfg))
        result = train_model(cfg)
    except (ValueError, FileNotFoundError, MedflowError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"run {result.run_id}: {result.metrics.get('training', {})} -> {result.run_dir}")
    if evaluate:
        from tasks.evaluate.progress import rich_progress
        from tasks.evaluate.run import evaluate_run, headline

        with rich_progress(console) as progress:
            summary = headline(evaluate_run(result.run_dir, progress=progress))
        shown = ", ".join(f"{k}={v:.3f}" for k, v in summary.items() if isinstance(v, float))
        console.print(f"evaluated: {shown} -> {result.run_dir / 'report.html'}")


def placement_note(cfg) -> str:
    """What the run will use, said before it starts; on a CPU, that an estimate follows and the CPU-sized backbone."""
    from models.launch import plan_for

    plan = plan_for(cfg)
    where = f"{plan.processes} GPU(s)" if plan.accelerator == "gpu" else (
        "the CPU" if plan.processes == 1 else f"{plan.processes} CPU processes (gloo)")  # fmt: skip
    note = f"training {cfg.backbone} on {where}, {cfg.epochs} epoch(s), batch {cfg.batch_size} per process"
    if plan.accelerator == "cpu":
        note += "; the epoch-time estimate follows the first training steps"
        if cfg.backbone != "cnn3d":
            note += (f". {cfg.backbone} is a GPU-sized network: on a CPU, the small 3D CNN "
                     "(--backbone cnn3d --size 56) trains far faster")  # fmt: skip
    return note
