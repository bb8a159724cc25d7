"""Batched inference of a loaded run on manifest rows: head outputs averaged over test-time clips, and their spread.

The same routine scores the champion and the challenger in ``promote`` and new rows in ``predict``, so both
models see identical clips. Rows are manifest rows with ``array_key`` (the view or volume) and ``patient_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.datamodule import ClipDataset
from models.run import TrainedRun
from models.table import STORE


@dataclass(frozen=True)
class Scored:
    """Per row: prediction columns (``objective.columns``) and the std of the score over the clips."""

    columns: dict[str, np.ndarray]
    spread: np.ndarray


def tabular_inputs(run: TrainedRun, rows: pd.DataFrame) -> np.ndarray:
    """The run's covariates from ``rows`` when all are there; else zeros, i.e. the training mean (documented)."""
    cols = list(run.scaler.columns)
    if cols and all(c in rows.columns for c in cols):
        return run.scaler.transform(rows.rename(columns={c: f"x_{c}" for c in cols})).astype(np.float32)
    return np.zeros((len(rows), run.scaler.width), np.float32)


def score_rows(
    run: TrainedRun, dataset: Path, rows: pd.DataFrame, clips: int = 4, batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> Scored:  # fmt: skip
    """Outputs of ``run`` for each row: ``clips`` evenly spaced clips per instance, outputs averaged."""
    n = len(rows)
    tab = tabular_inputs(run, rows)
    ds = ClipDataset(Path(dataset) / STORE, rows["array_key"].tolist(), {}, tab, np.zeros(n, np.int64), run.clip,
                     mode="multi", clips=clips)  # fmt: skip
    model = run.model.to(device).eval()
    outs, spreads = [], []
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            idx = range(start, min(n, start + batch_size))
            video = torch.stack([torch.from_numpy(ds.read(i)) for i in idx]).to(device)  # (b, K, T, H, W)
            b, k = video.shape[:2]
            x = run.prepare(video.flatten(0, 1))
            t = torch.from_numpy(tab[start : start + b]).to(device).repeat_interleave(k, dim=0)
            out = model(x, t if t.shape[1] else None).float()
            per_clip = run.score(out).view(b, k)
            outs.append(out.view(b, k, -1).mean(dim=1).cpu())
            spreads.append(per_clip.std(dim=1, unbiased=False).cpu())
    if not outs:
        return Scored({}, np.zeros(0))
    mean = torch.cat(outs)
    return Scored(run.objective.columns(mean), torch.cat(spreads).numpy())
