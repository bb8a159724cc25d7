"""Prefect flow ``federate``: federated training across sites on NVIDIA FLARE, its rounds shown in the dashboard.

Parameters are location names (each site's dataset and labels) and training options, never paths. The flow
asks each site for its label summary (aggregates), agrees the label encoding, runs the FLARE job (server and one
process per site, on loopback) and reports every round as it lands: a log line, a progress artifact and a table
artifact of the aggregated validation metrics. At the end each site evaluates the global model on its own
held-out patients and keeps a normal run directory (registered as a ``run-…`` handle).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from pydantic import BaseModel

from flows.redact import redacted_errors
from models.federated.plan import Algorithm, FederationPlan, Site, agree_objective
from tasks.locations import LocationKind, LocationName, Locations

FEDERATED_EVENT = "medflow.federation.finished"


class SiteLocations(BaseModel):
    """One site of a federation, by location names."""

    dataset: LocationName
    labels: LocationName


@task(name="site-label-summary", persist_result=False, cache_policy=None)
def site_summary(plan: FederationPlan, site: str) -> dict[str, Any]:
    """At the site: counts and moments (or class names) of its training labels."""
    from models.federated.site import summarise_site

    return summarise_site(plan, plan.site(site), Locations.from_settings())


@task(name="federated-training", persist_result=False, cache_policy=None)
def federated_training(plan: FederationPlan) -> list[dict[str, Any]]:
    """Run the FLARE job; log and publish each round's aggregated metrics as it lands. Returns the round records."""
    from models.federated.job import run_federation

    logger = get_run_logger()
    key = f"federate-{plan.run_id}".lower()
    progress = create_progress_artifact(0.0, key=f"{key}-progress", description=f"{plan.rounds} rounds")
    rows: list[dict[str, Any]] = []

    def report(record: dict[str, Any]) -> None:
        row = {"round": record["round"], "sites": record["sites"], **record["metrics"]}
        rows.append(row)
        logger.info("round %s of %d: %d sites, %s", record["round"] + 1, plan.rounds, record["sites"] or 0,
                    record["metrics"])  # fmt: skip
        update_progress_artifact(progress, 100.0 * len(rows) / plan.rounds)
        create_table_artifact(key=f"{key}-rounds", table=rows, description="Aggregated validation metrics by round")

    workdir = Locations.from_settings().state_dir / "federate" / plan.run_id
    result = run_federation(plan, workdir, on_round=report)
    return result.rounds


@task(name="site-evaluation", persist_result=False, cache_policy=None)
def site_evaluation(plan: FederationPlan, site: str) -> dict[str, Any]:
    """At the site: the global model on its held-out test patients; its run directory becomes a ``run-…`` handle."""
    from models.federated.job import global_weights
    from models.federated.site import evaluate_site

    locations = Locations.from_settings()
    weights = global_weights(locations.state_dir / "federate" / plan.run_id)
    run_dir, metrics = evaluate_site(plan, plan.site(site), weights, locations)
    return {"run_dir": locations.register(LocationKind.RUN, run_dir), "metrics": metrics}


def new_run_id(task_name: str) -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-federated-{task_name}-{secrets.token_hex(3)}"


@flow(name="federate", persist_result=False)
def federate(
    sites: list[SiteLocations],
    task: str,
    options: dict[str, Any] | None = None,
    rounds: int = 5,
    local_epochs: int = 1,
    algorithm: Algorithm = Algorithm.FEDAVG,
    mu: float = 0.01,
    local_batches: int | None = None,
) -> dict[str, Any]:
    """Federated training of ``task`` over ``sites``; returns run id, per-round metrics and per-site test metrics."""
    from prefect.events import emit_event

    with redacted_errors("federate"):
        named = [Site(f"site-{i + 1}", s.dataset, s.labels) for i, s in enumerate(sites)]
        plan = FederationPlan(task, named, dict(options or {}), rounds, local_epochs, algorithm, mu,
                              run_id=new_run_id(task), local_batches=local_batches)  # fmt: skip
        summaries = [site_summary(plan, s.name) for s in plan.sites]
        plan.objective = agree_objective(task, plan.options.get("head"), summaries)
        round_records = federated_training(plan)
        results = {s.name: {"dataset": s.dataset, **site_evaluation(plan, s.name)} for s in plan.sites}
    get_run_logger().info("federation %s finished: %s", plan.run_id, {k: v["metrics"] for k, v in results.items()})
    create_table_artifact(key=f"federate-{plan.run_id}-sites".lower(),
                          table=[{"site": k, **v["metrics"]} for k, v in results.items()],
                          description="The global model on each site's held-out patients")  # fmt: skip
    emit_event(event=FEDERATED_EVENT, resource={"prefect.resource.id": f"medflow.federation.{plan.run_id}"},
               payload={"run_id": plan.run_id, "runs": {k: v["run_dir"] for k, v in results.items()}})  # fmt: skip
    return {"run_id": plan.run_id, "algorithm": plan.algorithm.value, "rounds": round_records, "sites": results}
