"""``medflow serve``: one long-running process serving every deployment against a Prefect server."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import typer


def command(
    dataset: str | None = typer.Option(
        None, help="Dataset the ingests write and training reads: a folder, or a name of MEDFLOW_LOCATIONS."
    ),
    sources_file: Path | None = typer.Option(
        None, envvar="MEDFLOW_SOURCES_FILE", help="YAML list of sources; one ingest-<name> deployment each."
    ),
    key_file: Path | None = typer.Option(None, help="De-identification key file (else MEDFLOW_DEID_KEY)."),
    workers: int = typer.Option(2, min=1, help="Worker processes per ingest."),
    dask_address: str | None = typer.Option(None, help="Run ingest tasks on this Dask scheduler (tcp://host:8786)."),
    threshold: int = typer.Option(1, min=0, help="New manifest rows an ingest must add before training starts."),
    labels: Path | None = typer.Option(None, help="De-identified labels CSV for the train deployment."),
    task: str = typer.Option("survival", help="Training task: survival | classification | regression."),
    train_options: str = typer.Option("{}", help="More TrainConfig options as JSON, e.g. '{\"epochs\": 5}'."),
    evaluate_options: str = typer.Option("{}", help="Evaluate parameters as JSON, e.g. '{\"n_resamples\": 200}'."),
    gpus: int | None = typer.Option(None, min=1, help="Slots of the `gpu` concurrency limit (default: GPUs seen)."),
    setup_only: bool = typer.Option(False, help="Create the `gpu` limit and work pools, then exit."),
    state_dir: Path | None = typer.Option(None, help="State directory of the local server (for PREFECT_API_URL)."),
    port: int = typer.Option(4200, help="Port of the local server, when PREFECT_API_URL is not set."),
) -> None:
    """Serve ingest-<source> (cron; per study for listeners, which run here too), train (on
    medflow.dataset.updated) and evaluate (on medflow.model.trained)."""
    from deployments.server import local_server, wait_healthy
    from tasks.config import load_settings
    from tasks.errors import MedflowError

    settings = load_settings(state_dir=state_dir)
    if not os.environ.get("PREFECT_API_URL"):
        os.environ["PREFECT_API_URL"] = local_server(settings.state_dir, port).api_url
    api_url = os.environ["PREFECT_API_URL"]
    if not wait_healthy(api_url, timeout_s=60):
        typer.echo(f"Error: no Prefect server at {api_url}; start one with `medflow server` first.", err=True)
        raise typer.Exit(2)

    from deployments.serve import ensure_infrastructure, serve_all

    try:
        if setup_only:
            for line in ensure_infrastructure(gpus) or ["nothing to create"]:
                typer.echo(line)
            return
        if labels is None:
            typer.echo("Warning: no --labels given; the train deployment fails until labels are set.", err=True)
        if dataset is None:
            typer.echo("Error: --dataset is required to serve the deployments.", err=True)
            raise typer.Exit(2)
        options = _serve_options(
            settings, dataset, sources_file, key_file, labels, task, train_options, evaluate_options, workers,
            dask_address, threshold,
        )  # fmt: skip
        typer.echo(f"Serving medflow deployments against {api_url} (Ctrl-C to stop)")
        # Ctrl-C / SIGINT stops it even where its launcher ignored SIGINT (a background job of a script, CI)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        serve_all(options, gpus)
    except MedflowError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None


def _serve_options(
    settings, dataset: str, sources_file: Path | None, key_file: Path | None, labels: Path | None, task: str,
    train_options: str, evaluate_options: str, workers: int, dask_address: str | None, threshold: int,
):  # fmt: skip
    """Register every path given here as a location (the deployments carry names only) and point the served runs,
    subprocesses of this one, at the same state directory and sources file."""
    from deployments.serve import ServeOptions
    from flows.train import PLACE_OPTIONS
    from tasks.locations import LocationKind, Locations

    locations = Locations.from_settings(settings)
    os.environ["MEDFLOW_STATE_DIR"] = str(locations.state_dir.resolve())
    if sources_file is not None:
        os.environ["MEDFLOW_SOURCES_FILE"] = str(sources_file.resolve())
    options = _json_object("--train-options", train_options)
    for option, kind in PLACE_OPTIONS.items():
        if options.get(option):
            options[option] = locations.register(kind, Path(options[option]))
    return ServeOptions(
        dataset=dataset if dataset in settings.locations else locations.register(LocationKind.DATASET, Path(dataset)),
        sources_file=sources_file.resolve() if sources_file else None,
        key_file=locations.register(LocationKind.KEY, key_file) if key_file else None,
        workers=workers,
        dask_address=dask_address,
        threshold=threshold,
        train_options={
            "labels": locations.register(LocationKind.LABELS, labels) if labels else "",
            "task": task,
            "options": options,
        },
        evaluate_options=_json_object("--evaluate-options", evaluate_options),
    )


def _json_object(option: str, text: str) -> dict:
    """A JSON object given on the command line; a ConfigError names the option otherwise."""
    import json

    from tasks.errors import ConfigError

    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"{option} is not valid JSON; pass an object such as '{{\"epochs\": 5}}'") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{option} must be a JSON object")
    return value
