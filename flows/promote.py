"""Prefect flow ``promote``: champion vs challenger for the run a ``medflow.model.trained`` event announced.

Thin: the work is ``tasks.registry.promote.promote_run``. The parameter is the run's location name (the
``run-…`` handle of the event); artifacts hold metric names, numbers, subgroup labels (sex, age band, group)
and model versions only (the plots are MLflow artifacts of the challenger's run, named by run id and artifact
path: a Prefect artifact cannot hold an image); ``medflow.model.promoted`` is emitted when the alias ``champion``
moves.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from flows.redact import redacted_errors
from tasks.locations import LocationKind, LocationName, Locations
from tasks.registry.compare import PromotionPolicy
from tasks.registry.promote import PromotionResult, promote_run

PROMOTED_EVENT = "medflow.model.promoted"


@flow(name="promote", persist_result=False)
def promote(
    run_dir: LocationName, margin: float = 0.01, subgroup_tolerance: float = 0.05, min_subgroup_patients: int = 10,
    n_resamples: int = 1000, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Promote the run's model version to ``champion`` if it is non-inferior, better, and fair enough; say why."""
    policy = PromotionPolicy(margin, subgroup_tolerance, min_subgroup_patients, n_resamples, seed)
    with redacted_errors("promote"):
        locations = Locations.from_settings()
        result = promote_run(locations.path(LocationKind.RUN, run_dir), policy, locations.state_dir)
    publish(result, policy)
    get_run_logger().info("%s version %d: %s", result.model, result.challenger,
                          "promoted" if result.promoted else "not promoted")  # fmt: skip
    if result.promoted:
        emit_event(
            event=PROMOTED_EVENT,
            resource={"prefect.resource.id": f"medflow.model.{result.model}"},
            payload={"model": result.model, "version": result.challenger, "previous": result.champion},
        )
    return dataclasses.asdict(result)


def publish(result: PromotionResult, policy: PromotionPolicy) -> None:
    """Decision (markdown) and the table of paired differences."""
    verdict = "promoted to champion" if result.promoted else "not promoted"
    against = f"champion version {result.champion}" if result.champion else "no champion"
    lines = [f"# {result.model}: version {result.challenger} {verdict}", "",
             f"Compared with {against} on {result.patients} shared held-out patients; paired patient-level bootstrap "
             f"({policy.n_resamples} resamples, {policy.level:.0%} intervals). Rule: every primary metric's "
             f"improvement lower bound above -{policy.margin}, the first better on the point estimate, no subgroup "
             f"of at least {policy.min_subgroup_patients} patients worse by more than {policy.subgroup_tolerance}.",
             ""]  # fmt: skip
    lines += [f"- {r}" for r in result.reasons] or ["- all criteria met"]
    if result.plots:
        lines += ["", f"Plots (bootstrap distribution of the differences with the margin; per-subgroup differences "
                  f"with intervals) are artifacts of MLflow run `{result.mlflow_run_id}`: "
                  + ", ".join(f"`{p}`" for p in result.plots)]  # fmt: skip
    create_markdown_artifact(key="promotion-decision", markdown="\n".join(lines), description="Promotion decision")
    if result.table:
        create_table_artifact(
            key="promotion-differences",
            table=result.table,
            description="Challenger minus champion (positive = better), overall and per subgroup",
        )
