"""One site's side of a federation: its training config, label summary, prepared run and final evaluation.

Everything here runs where the site's data is; what it returns is aggregates (counts, moments, metrics) only.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
import yaml

from models.federated.plan import FederationPlan, Site, label_summary
from models.training import PreparedRun, TrainConfig, prepare_run
from tasks.atomic import atomic_write_bytes
from tasks.locations import LocationKind, Locations


def site_config(plan: FederationPlan, site: Site, locations: Locations) -> TrainConfig:
    """The site's TrainConfig: its own dataset and labels, the federation's shared options.

    The learning-rate schedule spans the whole federation (``rounds × local_epochs`` epochs)."""
    return TrainConfig(
        dataset=str(locations.path(LocationKind.DATASET, site.dataset)),
        labels=str(locations.path(LocationKind.LABELS, site.labels)),
        task=plan.task,
        **{**plan.options, "epochs": plan.rounds * plan.local_epochs},
    )


def summarise_site(plan: FederationPlan, site: Site, locations: Locations) -> dict[str, Any]:
    """The site's label summary (see :func:`models.federated.plan.label_summary`), from its own training split."""
    from models.table import LabelSpec, assign_split, load_table, read_labels, split_patients

    cfg = site_config(plan, site, locations)
    spec = LabelSpec(cfg.task, cfg.id_col, cfg.start_col, cfg.end_col, cfg.event_col, cfg.target_col,
                     tuple(cfg.tabular), cfg.group_col, cfg.kind)  # fmt: skip
    table = load_table(Path(cfg.dataset), read_labels(cfg.labels), spec)
    table = assign_split(table, split_patients(table["patient_id"], cfg.seed))
    return label_summary(cfg.task, table[table["split"] == "train"])


def prepare_site(plan: FederationPlan, site: Site, locations: Locations) -> tuple[TrainConfig, PreparedRun]:
    """The site's config and prepared run with the federation's agreed label encoding."""
    import pytorch_lightning as pl

    from models.heads import objective_from_state

    cfg = site_config(plan, site, locations)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    objective = objective_from_state(plan.objective) if plan.objective else None
    return cfg, prepare_run(cfg, objective=objective)


def evaluate_site(plan: FederationPlan, site: Site, weights: dict[str, torch.Tensor],
                  locations: Locations) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """Load the global weights at the site, predict its held-out test patients and write a run directory
    ``DATASET/runs/<run-id>/`` that :func:`models.run.load_run` and ``medflow evaluate`` read; returns it and the
    test metrics (aggregates)."""
    from models.training import _prediction_frame, _quick_metrics

    cfg, prepared = prepare_site(plan, site, locations)
    model, objective = prepared.model, prepared.objective
    model.load_state_dict(weights)
    run_dir = Path(cfg.dataset) / "runs" / plan.run_id
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    buffer = _to_bytes(model.state_dict())
    atomic_write_bytes(run_dir / "checkpoints" / "best.ckpt", buffer)
    atomic_write_bytes(run_dir / "checkpoints" / "last.ckpt", buffer)
    if cfg.task == "survival" and objective.head == "coxph":  # the baseline hazard stays at the site
        out, idx = model.predict_outputs(prepared.dm.train_eval_dataloader())
        rows = prepared.dm.rows("train").iloc[idx.numpy()]
        objective.fit_baseline(objective.score(out).numpy(), rows["duration"].to_numpy(float),
                               rows["event"].to_numpy(float))  # fmt: skip
    out, idx = model.predict_outputs(prepared.dm.test_dataloader())
    predictions = _prediction_frame(prepared.dm.rows("test").iloc[idx.numpy()], objective, out, cfg)
    atomic_write_bytes(run_dir / "predictions.parquet", predictions.to_parquet(index=False))
    metrics = {"training": _quick_metrics(cfg.task, predictions, objective), "best_checkpoint": "best.ckpt",
               "federation": {"algorithm": plan.algorithm.value, "rounds": plan.rounds, "site": site.name}}  # fmt: skip
    atomic_write_bytes(run_dir / "metrics.json", json.dumps(metrics, indent=2).encode())
    config = {
        "run_id": plan.run_id,
        "args": dataclasses.asdict(cfg),
        "task": cfg.task,
        "head": objective.head,
        "backbone": cfg.backbone,
        "dataset": str(Path(cfg.dataset).resolve()),
        "manifest_sha256": prepared.manifest_sha256,
        "split": prepared.split,
        "counts": {name: int((prepared.table["split"] == name).sum()) for name in ("train", "val", "test")},
        "objective": objective.state(),
        "tabular": prepared.scaler.state(),
        "groups": {"column": cfg.group_col, "categories": prepared.groups},
        "input": prepared.input_spec.as_dict(),
        "clip": dataclasses.asdict(prepared.clip),
        "federation": {"algorithm": plan.algorithm.value, "rounds": plan.rounds, "local_epochs": plan.local_epochs,
                       "local_batches": plan.local_batches,
                       "mu": plan.mu, "site": site.name, "sites": len(plan.sites)},
    }
    atomic_write_bytes(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    return run_dir, metrics["training"]


def _to_bytes(state: dict[str, torch.Tensor]) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"state_dict": state}, buffer)
    return buffer.getvalue()
