"""``train_model``: one training run from a dataset and a labels table to a run directory (plain Python).

The CLI (``medflow train``) and the Prefect flow (``flows/train.py``) both call this. Run directory:
``DATASET/runs/<run-id>/`` with ``config.yaml``, ``checkpoints/{best,last}.ckpt``, ``predictions.parquet``
(test split), ``metrics.json`` and ``logs/`` (CSV + TensorBoard).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from models.train_config import TrainConfig, TrainResult, new_run_id
from tasks.atomic import atomic_write_bytes

log = logging.getLogger(__name__)


def _input_stats(dm: Any, limit: int = 16) -> tuple[float, float]:
    """Mean and std of pixel values over a few training clips (recorded, then applied on the device)."""
    ds = dm.datasets["train_eval"]
    values = [ds.read(i).astype(np.float32) / 255.0 for i in range(min(limit, len(ds)))]
    flat = np.concatenate([v.ravel() for v in values])
    return float(flat.mean()), float(flat.std() or 1.0)


@dataclass
class PreparedRun:
    """What a run trains on and with: training table, split, label encoding, data module and model."""

    table: pd.DataFrame
    split: dict[str, list[str]]
    objective: Any
    scaler: Any
    groups: list[str]
    clip: Any
    dm: Any
    input_spec: Any
    model: Any
    manifest_sha256: str
    pretrained: dict[str, Any] | None = None


def prepare_run(cfg: TrainConfig, previous: dict[str, Any] | None = None, objective: Any | None = None,
                split: dict[str, list[str]] | None = None) -> PreparedRun:  # fmt: skip
    """Labels joined with the manifest, the patient split, label encoding, data module and an untrained model.

    ``previous`` (a resumed run's config) fixes all of them; else ``objective`` (already fitted, e.g. agreed by a
    federation) and ``split`` replace fitting and splitting here."""
    from models.checkpoints import check_backbone_weights
    from models.datamodule import ClipDataModule, ClipSpec
    from models.heads import FusionHead, build_objective, objective_from_state
    from models.module import ClinicalModel, InputSpec
    from models.networks import build_backbone
    from models.table import (
        LabelSpec,
        TabularScaler,
        assign_split,
        load_table,
        manifest_hash,
        read_labels,
        split_patients,
        subsample_train,
    )

    dataset = Path(cfg.dataset)
    spec = LabelSpec(cfg.task, cfg.id_col, cfg.start_col, cfg.end_col, cfg.event_col, cfg.target_col,
                     tuple(cfg.tabular), cfg.group_col, cfg.kind)  # fmt: skip
    labels = read_labels(cfg.labels)  # only tables from `medflow deid-table`, unchanged since
    table = load_table(dataset, labels, spec)
    mhash = manifest_hash(dataset)
    if previous is not None:
        split = previous["split"]
        if previous["manifest_sha256"] != mhash:
            log.warning("resuming on a changed manifest; keeping the recorded split")
    elif split is None:
        split = subsample_train(split_patients(table["patient_id"], cfg.seed), cfg.label_fraction, cfg.seed)
    table = assign_split(table, split)
    train_rows = table[table["split"] == "train"]
    if len(train_rows) < 2:
        raise ValueError(
            f"the training split has {len(train_rows)} instance(s); batch normalisation needs at least 2: "
            "label more patients or instances"
        )
    if previous is not None:
        objective = objective_from_state(previous["objective"])
        scaler = TabularScaler.from_state(previous["tabular"])
    elif objective is not None:  # agreed beforehand (a federation): already fitted, the same at every site
        scaler = TabularScaler(list(cfg.tabular)).fit(train_rows)
    else:
        objective = build_objective(cfg.task, cfg.head, num_durations=cfg.num_durations, cox_memory=cfg.cox_memory) \
            if cfg.task == "survival" else build_objective(cfg.task, cfg.head)  # fmt: skip
        objective.fit(train_rows)
        scaler = TabularScaler(list(cfg.tabular)).fit(train_rows)
    groups = sorted(table[cfg.group_col].astype(str).unique().tolist()) if cfg.group_col else []
    if cfg.fairness_penalty and not cfg.group_col:
        raise ValueError("--fairness-penalty needs --group-col")
    clip = ClipSpec(cfg.frames, cfg.stride, cfg.kind)
    dm = ClipDataModule(dataset, table, objective, scaler, cfg.group_col, groups, clip, cfg.batch_size,
                        cfg.num_workers, cfg.test_clips)  # fmt: skip
    dm.setup()
    if previous is not None:
        input_spec = InputSpec(**previous["input"])
    else:
        mean, std = _input_stats(dm)
        input_spec = InputSpec(mean=mean, std=std, size=cfg.size, augment=cfg.augment)

    pretrained = check_backbone_weights(Path(cfg.weights), cfg.backbone, cfg.kind) if cfg.weights else None
    backbone = build_backbone(cfg.backbone, Path(cfg.weights) if cfg.weights else None)
    head = FusionHead(backbone.out_features, objective.out_features, scaler.width)
    model = ClinicalModel(backbone, head, objective, input_spec, cfg.lr, cfg.weight_decay, cfg.fairness_penalty,
                          cfg.fairness_weight, cfg.epochs)  # fmt: skip
    return PreparedRun(table, split, objective, scaler, groups, clip, dm, input_spec, model, mhash, pretrained)


def train_model(cfg: TrainConfig) -> TrainResult:
    """Train, checkpoint, predict the test split, and write the run directory; returns its id, path and metrics.

    A run of several processes (``devices``: GPUs, or gloo processes on a CPU) is started as torchrun ranks of
    ``models.rank`` (:mod:`models.launch`); this process waits and returns rank 0's result.
    """
    from models.launch import in_launched_rank, launch_training, plan_for

    if not in_launched_rank() and plan_for(cfg).processes > 1:
        return launch_training(cfg)
    return _train_here(cfg)


def _train_here(cfg: TrainConfig) -> TrainResult:
    """The body of one process (the only one, or one rank of a launched run)."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    from models.callbacks import EpochEstimate, KLAnnealing
    from models.checkpoints import load_checkpoint, load_state_dict
    from models.launch import describe_placement, is_rank_zero, trainer_placement
    from tasks.registry.tracking import start_tracking

    dataset = Path(cfg.dataset)
    previous: dict[str, Any] | None = None
    if cfg.resume:
        run_dir = Path(cfg.resume)
        previous = yaml.safe_load((run_dir / "config.yaml").read_text())
        run_id = previous["run_id"]
    else:
        run_id = cfg.run_id or new_run_id(cfg)
        run_dir = dataset / "runs" / run_id
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    prepared = prepare_run(cfg, previous)
    table, split, objective, scaler, dm, model = (prepared.table, prepared.split, prepared.objective, prepared.scaler,
                                                  prepared.dm, prepared.model)  # fmt: skip
    groups, clip, input_spec, mhash = prepared.groups, prepared.clip, prepared.input_spec, prepared.manifest_sha256
    pretrained = prepared.pretrained

    config = {
        "run_id": run_id,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "args": asdict(cfg),
        "task": cfg.task,
        "head": objective.head,
        "backbone": cfg.backbone,
        "dataset": str(dataset.resolve()),
        "manifest_sha256": mhash,
        "split": split,
        "counts": {name: int((table["split"] == name).sum()) for name in ("train", "val", "test")},
        "objective": objective.state(),
        "tabular": scaler.state(),
        "groups": {"column": cfg.group_col, "categories": groups},
        "input": input_spec.as_dict(),
        "clip": asdict(clip),
        "pretrained": None
        if pretrained is None
        else {k: pretrained[k] for k in ("run_id", "methods", "backbone") if k in pretrained},
        "versions": {"torch": str(torch.__version__), "pytorch_lightning": str(pl.__version__)},
    }
    placement = trainer_placement(cfg)
    config["distributed"] = describe_placement(placement)
    run_dir.mkdir(parents=True, exist_ok=True)
    if is_rank_zero():
        _write_yaml(run_dir / "config.yaml", config)
    # MLflow (tasks.registry), rank 0 only: the other ranks' metrics reach it through Lightning's reduction
    tracking = start_tracking(cfg, run_id, mhash) if is_rank_zero() else None

    gpu = placement["accelerator"] == "gpu"
    ckpt_dir = run_dir / "checkpoints"
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min", save_last=True,
                           enable_version_counter=False)  # fmt: skip
    callbacks: list[pl.Callback] = [best, EarlyStopping(monitor="val_loss", patience=cfg.patience, mode="min")]
    if objective.head == "evidential":
        callbacks.append(KLAnnealing(cfg.kl_annealing_epochs))
    if not gpu:
        callbacks.append(EpochEstimate(cfg.backbone))
    # a resumed run keeps the first metrics.csv and logs the continuation beside it
    csv_version = "" if previous is None else f"resume-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    trainer = pl.Trainer(
        **placement,
        precision=cfg.precision or ("bf16-mixed" if gpu else "32-true"),
        max_epochs=cfg.epochs,
        callbacks=callbacks,
        logger=[
            CSVLogger(run_dir, name="logs", version=csv_version),
            TensorBoardLogger(run_dir, name="logs", version="tb"),
            *([tracking.logger] if tracking else []),
        ],
        deterministic="warn",
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        limit_train_batches=cfg.limit_batches,
        num_sanity_val_steps=0,
    )
    resume_ckpt = str(ckpt_dir / "last.ckpt") if previous is not None and (ckpt_dir / "last.ckpt").exists() else None
    if resume_ckpt:
        load_checkpoint(Path(resume_ckpt))  # refuses a checkpoint that would run code, before Lightning reads it
    trainer.fit(model, datamodule=dm, ckpt_path=resume_ckpt, weights_only=True)
    if not trainer.is_global_zero:
        return TrainResult(run_id, run_dir, {})

    best_path = Path(best.best_model_path) if best.best_model_path else ckpt_dir / "last.ckpt"
    model.load_state_dict(load_state_dict(best_path))
    model.to("cuda" if gpu else "cpu")
    if cfg.task == "survival" and objective.head == "coxph":
        out, idx = model.predict_outputs(dm.train_eval_dataloader())
        rows = dm.rows("train").iloc[idx.numpy()]
        objective.fit_baseline(objective.score(out).numpy(), rows["duration"].to_numpy(float),
                               rows["event"].to_numpy(float))  # fmt: skip
        config["objective"] = objective.state()
        _write_yaml(run_dir / "config.yaml", config)
    out, idx = model.predict_outputs(dm.test_dataloader())
    predictions = _prediction_frame(dm.rows("test").iloc[idx.numpy()], objective, out, cfg)
    atomic_write_bytes(run_dir / "predictions.parquet", predictions.to_parquet(index=False))
    metrics = {"training": _quick_metrics(cfg.task, predictions, objective), "best_checkpoint": best_path.name,
               "epochs_run": int(trainer.current_epoch), "best_val_loss": _float(best.best_model_score)}  # fmt: skip
    atomic_write_bytes(run_dir / "metrics.json", json.dumps(metrics, indent=2).encode())
    log.info("run %s: %s", run_id, metrics["training"])
    if tracking:
        tracking.finish(run_dir, best_path, metrics)
    return TrainResult(run_id, run_dir, metrics)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _write_yaml(path: Path, data: dict) -> None:
    atomic_write_bytes(path, yaml.safe_dump(data, sort_keys=False).encode())


def _prediction_frame(rows: pd.DataFrame, objective: Any, out: Any, cfg: TrainConfig) -> pd.DataFrame:
    frame = pd.DataFrame({"patient_id": rows["patient_id"].to_numpy(), "instance_id": rows["instance_id"].to_numpy()})
    if cfg.task == "survival":
        frame["time"] = rows["duration"].to_numpy()
        frame["event"] = rows["event"].to_numpy().astype(int)
    else:
        frame["label"] = rows["target"].to_numpy()
    for name, values in objective.columns(out).items():
        frame[name] = values
    carried = ["sex", "age", "group", *([cfg.group_col] if cfg.group_col else [])]
    for col in dict.fromkeys(carried):
        if col in rows.columns and col not in frame.columns:
            frame[col] = rows[col].to_numpy()
    return frame


def _quick_metrics(task: str, pred: pd.DataFrame, objective: Any) -> dict[str, float]:
    """A first look at the test split (the evaluation step computes the full set with intervals)."""
    if pred.empty:
        return {}
    if task == "regression":
        from sklearn.metrics import mean_absolute_error, r2_score

        metrics = {"mae": float(mean_absolute_error(pred["label"], pred["prediction"])), "n": len(pred)}
        if len(pred) >= 2:
            metrics["r2"] = float(r2_score(pred["label"], pred["prediction"]))
        return metrics
    if task == "classification":
        probs = pred[[f"prob_{c}" for c in objective.classes]].to_numpy()
        labels = pred["label"].astype(str).to_numpy()
        predicted = np.asarray(objective.classes)[probs.argmax(1)]
        return {"accuracy": float((predicted == labels).mean()), "n": len(pred)}
    import torch
    from torchsurv.metrics.cindex import ConcordanceIndex

    if pred["event"].sum() == 0 or len(pred) < 2:
        return {"n": len(pred)}  # concordance needs two patients and an event
    cindex = ConcordanceIndex()(torch.tensor(pred["risk"].to_numpy(), dtype=torch.float32),
                                torch.tensor(pred["event"].to_numpy(), dtype=torch.bool),
                                torch.tensor(pred["time"].to_numpy(), dtype=torch.float32))  # fmt: skip
    return {"concordance": float(cindex), "n": len(pred)}
