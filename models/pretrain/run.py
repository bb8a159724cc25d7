"""``pretrain_backbone``: self-supervised pretraining on every stored array of a dataset (plain Python).

Output ``DATASET/pretrain/<run-id>/``: ``backbone.pt`` (the backbone's state dict and, under ``medflow``, its
config: backbone name, kind, clip, input normalisation, methods; plain data, loads with ``weights_only=True``),
``config.yaml`` and ``logs/`` (CSV). ``medflow train --weights backbone.pt`` fine-tunes from it.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tasks.atomic import atomic_output, atomic_write_bytes

log = logging.getLogger(__name__)

CHECKPOINT = "backbone.pt"
FORMAT = "medflow-backbone/1"


@dataclass
class PretrainConfig:
    """Every option of a pretraining run (saved verbatim in ``config.yaml``)."""

    dataset: str
    methods: list[str] = field(default_factory=lambda: ["contrastive"])
    backbone: str = "r2plus1d_18"
    kind: str = "video"
    frames: int = 16
    stride: int = 1
    size: int | None = None
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    num_workers: int = 2
    permutations: int = 32
    temperature: float = 0.1
    val_fraction: float = 0.1
    precision: str | None = None
    accelerator: str = "auto"
    devices: str = "auto"
    run_id: str | None = None
    limit_batches: float | None = None


@dataclass(frozen=True)
class PretrainResult:
    run_id: str
    run_dir: Path
    checkpoint: Path
    metrics: dict[str, float]


def _stats(dataset: Any, limit: int = 16) -> tuple[float, float]:
    picked = range(min(limit, len(dataset)))
    values = np.concatenate([dataset.read(i).astype(np.float32).ravel() / 255.0 for i in picked])
    return float(values.mean()), float(values.std() or 1.0)


def pretrain_backbone(cfg: PretrainConfig) -> PretrainResult:
    """Pretrain ``cfg.backbone`` on the dataset's arrays of ``cfg.kind``; write the run directory; return it."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.loggers import CSVLogger
    from torch.utils.data import DataLoader

    from models.datamodule import ClipSpec, worker_init
    from models.module import InputSpec
    from models.networks import build_backbone
    from models.pretrain.data import PairDataset, split_rows, unlabelled_rows
    from models.pretrain.module import Method, PretrainModel

    methods = [Method(m).value for m in cfg.methods]  # ValueError names the unknown method
    dataset = Path(cfg.dataset)
    run_id = cfg.run_id or f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-pretrain-{cfg.backbone}-{secrets.token_hex(3)}"
    run_dir = dataset / "pretrain" / run_id
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    train_rows, val_rows = split_rows(unlabelled_rows(dataset, cfg.kind), cfg.val_fraction, cfg.seed)
    if len(train_rows) < 2:
        raise ValueError(f"pretraining needs at least 2 arrays, the dataset has {len(train_rows)}")
    clip = ClipSpec(cfg.frames, cfg.stride, cfg.kind)
    train_ds = PairDataset(dataset, train_rows["array_key"].tolist(), clip)
    val_ds = PairDataset(dataset, val_rows["array_key"].tolist(), clip)
    mean, std = _stats(train_ds)
    input_spec = InputSpec(mean=mean, std=std, size=cfg.size)

    def loader(ds: PairDataset, shuffle: bool) -> DataLoader:
        drop = len(ds) > cfg.batch_size  # no lone last clip: NT-Xent needs negatives
        return DataLoader(ds, batch_size=cfg.batch_size, shuffle=shuffle, drop_last=drop,
                          num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0,
                          worker_init_fn=worker_init if cfg.num_workers > 0 else None,
                          pin_memory=torch.cuda.is_available())  # fmt: skip

    backbone = build_backbone(cfg.backbone)
    model = PretrainModel(backbone, methods, input_spec, cfg.lr, cfg.weight_decay, cfg.epochs, cfg.permutations,
                          cfg.temperature)  # fmt: skip
    gpu = torch.cuda.is_available() and cfg.accelerator in ("auto", "gpu", "cuda")
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = pl.Trainer(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        precision=cfg.precision or ("bf16-mixed" if gpu else "32-true"),
        max_epochs=cfg.epochs,
        logger=CSVLogger(run_dir, name="logs", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        limit_train_batches=cfg.limit_batches,
        num_sanity_val_steps=0,
        deterministic="warn",
    )
    val = loader(val_ds, False) if len(val_ds) >= 2 else None
    trainer.fit(model, train_dataloaders=loader(train_ds, True), val_dataloaders=val)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train_", "val_"))}
    meta = {
        "format": FORMAT,
        "run_id": run_id,
        "backbone": cfg.backbone,
        "kind": cfg.kind,
        "methods": methods,
        "clip": asdict(clip),
        "input": input_spec.as_dict(),
        "arrays": len(train_ds),
        "epochs": cfg.epochs,
    }
    checkpoint = run_dir / CHECKPOINT
    state = {k: v.detach().cpu() for k, v in model.backbone.state_dict().items()}
    with atomic_output(checkpoint) as fh:
        torch.save({"state_dict": state, "medflow": meta}, fh)
    config = {"run_id": run_id, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "args": asdict(cfg),
              "backbone": meta, "metrics": metrics, "dataset": str(dataset.resolve()),
              "counts": {"train": len(train_ds), "val": len(val_ds)},
              "versions": {"torch": str(torch.__version__), "pytorch_lightning": str(pl.__version__)}}  # fmt: skip
    atomic_write_bytes(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    log.info("pretrained %s on %d arrays: %s", cfg.backbone, len(train_ds), metrics)
    return PretrainResult(run_id, run_dir, checkpoint, metrics)
