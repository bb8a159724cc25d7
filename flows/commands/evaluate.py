"""``medflow evaluate RUN_DIR``: metrics with bootstrap intervals, subgroups, model checks, report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def command(
    run_dir: Annotated[Path, typer.Argument(help="Training run directory (DATASET/runs/<run-id>).")],
    resamples: Annotated[int | None, typer.Option("--resamples", min=0, help="Bootstrap resamples by patient.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Bootstrap seed.")] = None,
    model_checks: Annotated[
        bool | None,
        typer.Option("--model-checks/--no-model-checks", help="Occlusion, saliency, OOD (needs the checkpoint)."),
    ] = None,
) -> None:
    """Write RUN_DIR/metrics.json and RUN_DIR/report.html and print the overall metrics."""
    import logging

    from rich.console import Console
    from rich.table import Table

    from tasks.errors import MedflowError
    from tasks.evaluate.progress import rich_progress
    from tasks.evaluate.run import REPORT, evaluate_run, headline, run_options

    console = Console(stderr=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not run_dir.is_dir():
        console.print(f"[red]error:[/red] {run_dir} is not a directory; pass DATASET/runs/<run-id>", soft_wrap=True)
        raise typer.Exit(2)
    try:
        options = run_options(run_dir, n_resamples=resamples, seed=seed, model_checks=model_checks)
        console.print(f"evaluating ({options.n_resamples} bootstrap resamples)…")
        with rich_progress(console) as progress:
            metrics = evaluate_run(run_dir, options, progress)
    except MedflowError as error:
        console.print(f"[red]error:[/red] {error}", soft_wrap=True)
        raise typer.Exit(2) from None
    table = Table("metric", "estimate", "95% CI")
    for name, value in headline(metrics).items():
        if name.endswith("_ci") or not isinstance(value, float):
            continue
        ci = metrics.get(f"{name}_ci") or [None, None]
        interval = "–" if None in ci else f"{ci[0]:.3f} – {ci[1]:.3f}"
        table.add_row(name, f"{value:.4f}", interval)
    Console().print(table)
    console.print(f"report: {run_dir / REPORT}")
