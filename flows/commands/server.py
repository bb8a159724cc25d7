"""``medflow server``: the Prefect server and dashboard on 127.0.0.1, with its database under the state directory."""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    port: int = typer.Option(4200, help="Port of the API and dashboard (bound to 127.0.0.1 only)."),
    state_dir: Path | None = typer.Option(None, help="Where PREFECT_HOME and the SQLite database live."),
    mlflow: bool = typer.Option(False, "--mlflow/--no-mlflow", help="Also run `mlflow server` on 127.0.0.1."),
    mlflow_port: int = typer.Option(5000, help="Port of the MLflow server (127.0.0.1 only)."),
) -> None:
    """Run the Prefect server with the dashboard until Ctrl-C.

    Set PREFECT_SERVER_DATABASE_CONNECTION_URL to use PostgreSQL instead of SQLite.
    """
    from deployments.server import local_server, run_foreground
    from tasks.config import load_settings

    settings = load_settings(state_dir=state_dir)
    server = local_server(settings.state_dir, port)
    typer.echo(f"Prefect home: {server.home}")
    typer.echo(f"Dashboard:    {server.dashboard_url}")
    typer.echo(f"Point flows and `medflow serve` at it with: export PREFECT_API_URL={server.api_url}")
    registry = None
    if mlflow:
        from deployments.mlflow_server import MlflowServer, start_mlflow

        tracking = MlflowServer(settings.state_dir, mlflow_port)
        registry = start_mlflow(tracking, server.home / "mlflow-server.log")
        typer.echo(f"MLflow:       {tracking.url} (export MLFLOW_TRACKING_URI={tracking.url})")
    try:
        status = run_foreground(server)
    finally:
        if registry is not None:
            registry.terminate()
            registry.wait(timeout=30)
    if status not in (0, -2, 130):
        typer.echo(f"Error: the Prefect server exited with status {status} (port {port} in use?)", err=True)
        raise typer.Exit(status)
