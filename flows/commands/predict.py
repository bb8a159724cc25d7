"""``medflow predict DATASET [--model NAME]``: the champion scores the dataset's new instances (with abstention)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def command(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (store.zarr, manifest.parquet).")],
    model: Annotated[
        str | None, typer.Option("--model", help="Registered model (default: every champion of the dataset).")
    ] = None,
    coverage: Annotated[float, typer.Option("--coverage", help="Validation coverage the abstention keeps.")] = 0.9,
    clips: Annotated[int, typer.Option("--clips", min=1, help="Test-time clips per instance.")] = 2,
) -> None:
    """Write DATASET/predictions/<model>-v<version>/{predictions,patients}.parquet and print the counts."""
    from tasks.config import load_settings
    from tasks.predict.apply import predict_dataset
    from tasks.registry.store import champion_version, client, models_of_dataset
    from tasks.registry.tracking import dataset_location

    if not (dataset / "manifest.parquet").exists():
        typer.echo(f"error: {dataset} has no manifest.parquet; run `medflow ingest` first", err=True)
        raise typer.Exit(2)
    settings = load_settings()
    c = client(Path(settings.state_dir))
    names = [model] if model else [m for m in models_of_dataset(c, dataset_location(settings, dataset))
                                   if champion_version(c, m) is not None]  # fmt: skip
    if not names:
        typer.echo("error: no champion for this dataset yet; train and promote a model first", err=True)
        raise typer.Exit(2)
    for name in names:
        s = predict_dataset(dataset, Path(settings.state_dir), name, coverage, clips)
        typer.echo(f"{name} v{s.version}: {s.scored} scored, {s.abstained} abstained (u > {s.threshold}), "
                   f"refused {s.refused or 0}")  # fmt: skip
