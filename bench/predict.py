"""Prediction throughput: medflow's batched scorer (tasks/predict/infer.py) vs the same model's Lightning
``Trainer.predict`` loop, on the same instances, clips and batch size.

Both read the same ClipDataset (``mode="multi"``: ``--clips`` evenly spaced clips per instance) and average the
head outputs over the clips; Lightning gets a LightningModule whose ``predict_step`` does exactly that.

Usage::

    python bench/predict.py [--patients 48] [--clips 2] [--batch-size 8] [--backbone cnn3d] [--size 32]

Trains one tiny run (1 epoch) on a synthetic view dataset in a temporary folder, then prints instances/s for
both on this machine (CPU; and CUDA when a GPU is visible).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=48)
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--backbone", default="cnn3d")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ["MEDFLOW_MLFLOW"] = "false"  # the benchmark measures inference, not tracking

    import pandas as pd
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from models.datamodule import ClipDataset
    from models.run import load_run
    from models.table import MANIFEST, STORE
    from models.training import TrainConfig, train_model
    from tasks.predict.infer import score_rows, tabular_inputs
    from tasks.synth.views import save_labels, write_view_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        labels = write_view_dataset(root, patients=args.patients, seed=0, frames=48, size=64)
        save_labels(labels, Path(tmp) / "labels.csv")
        run_dir = train_model(TrainConfig(str(root), str(Path(tmp) / "labels.csv"), "regression", target_col="ef",
                                          backbone=args.backbone, frames=args.frames, size=args.size, epochs=1,
                                          num_workers=0, batch_size=8)).run_dir  # fmt: skip
        run = load_run(run_dir)
        rows = pd.read_parquet(root / MANIFEST).assign(array_key=lambda r: r["view_key"])
        n = len(rows)

        class Predictor(pl.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.net = run.model

            def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
                video = batch["video"]
                b, k = video.shape[:2]
                out = self.net(run.prepare(video.flatten(0, 1)), None)
                return out.view(b, k, -1).mean(dim=1)

        tab = tabular_inputs(run, rows)
        ds = ClipDataset(root / STORE, rows["array_key"].tolist(), {}, tab, np.zeros(n, np.int64), run.clip,
                         mode="multi", clips=args.clips)  # fmt: skip
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        print(f"{n} instances, {args.clips} clips each, batch {args.batch_size}, backbone {args.backbone}, "
              f"clip {args.frames}x{args.size}x{args.size}, torch threads {torch.get_num_threads()}")  # fmt: skip
        for device in devices:
            ours, theirs = [], []
            for _ in range(args.repeats):
                t = time.perf_counter()
                scored = score_rows(run, root, rows, args.clips, args.batch_size, device)
                ours.append(time.perf_counter() - t)
                trainer = pl.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1, logger=False,
                                     enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
                loader = DataLoader(ds, batch_size=args.batch_size, num_workers=0)
                t = time.perf_counter()
                out = torch.cat(trainer.predict(Predictor(), loader))
                theirs.append(time.perf_counter() - t)
            same = np.allclose(run.objective.columns(out)["prediction"], scored.columns["prediction"], atol=1e-4)
            print(
                f"[{device}] medflow score_rows: {n / min(ours):8.1f} instances/s | Lightning Trainer.predict: "
                f"{n / min(theirs):8.1f} instances/s | same predictions: {same} (best of {args.repeats})"
            )


if __name__ == "__main__":
    main()
