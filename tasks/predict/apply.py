"""``predict_dataset``: the champion of a task applied to a dataset's new instances, with abstention.

New instances are those of patients outside the champion's split (not trained, validated or tested on) and not
yet in this version's predictions. Inputs that fail QC or fall outside the training data (``profile``) are
refused, never scored. Scored instances whose uncertainty (evidential ``u``, else the spread of the score over
test-time clips) exceeds the threshold that keeps ``coverage`` of the validation split are marked ``abstain``.
Output: ``DATASET/predictions/<model>-v<version>/predictions.parquet`` (instances) and ``patients.parquet``.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.run import TrainedRun
from models.table import MANIFEST
from tasks.atomic import atomic_write_bytes
from tasks.errors import ConfigError
from tasks.predict.infer import Scored, score_rows
from tasks.predict.profile import TrainingProfile, refusal_reasons, unchecked, with_intensity
from tasks.registry.store import champion_version, client
from tasks.registry.versions import load_version

log = logging.getLogger(__name__)

PREDICTIONS_DIR = "predictions"
ID_COLUMNS = ("patient_id", "study_id", "instance_id")


@dataclass
class PredictSummary:
    """Counts only (what the Prefect artifact shows)."""

    model: str
    version: int
    scored: int = 0
    abstained: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    patients: int = 0
    threshold: float | None = None
    coverage: float = 0.9
    validation_rows: int = 0
    unchecked: list[str] = field(default_factory=list)  # refusal checks the manifest gave no data for

    def table(self) -> list[dict[str, Any]]:
        rows = [{"outcome": "scored", "instances": self.scored}, {"outcome": "abstain", "instances": self.abstained}]
        return rows + [{"outcome": f"refused: {k}", "instances": v} for k, v in sorted(self.refused.items())]


def uncertainty(scored: Scored) -> np.ndarray:
    """Evidential ``u`` when the head has one, else the std of the score over the test-time clips."""
    return np.asarray(scored.columns.get("uncertainty", scored.spread), dtype=float)


def abstention_threshold(validation_u: np.ndarray, coverage: float) -> float | None:
    """The uncertainty below which ``coverage`` of the validation instances fall (None: no validation rows)."""
    u = validation_u[np.isfinite(validation_u)]
    return float(np.quantile(u, coverage, method="higher")) if u.size else None


def model_rows(manifest: pd.DataFrame, run: TrainedRun) -> pd.DataFrame:
    key = "view_key" if run.clip.kind == "video" else "zarr_key"
    return manifest.assign(array_key=manifest[key].where(manifest["kind"] == run.clip.kind))


def predict_dataset(
    dataset: Path, state_dir: Path, model: str, coverage: float = 0.9, clips: int = 2, batch_size: int = 8,
    device: str = "cpu", max_z: float = 6.0,
) -> PredictSummary:  # fmt: skip
    """Score the new instances of ``dataset`` with the champion of ``model``; write and return the counts."""
    c = client(state_dir)
    version = champion_version(c, model)
    if version is None:
        raise ConfigError(f"model {model} has no champion yet: promote a version first")
    summary = PredictSummary(model, int(version.version), coverage=coverage)
    with tempfile.TemporaryDirectory() as tmp:
        run = load_version(c, version, Path(tmp))
    split = {k: {str(p) for p in v} for k, v in run.config["split"].items()}
    manifest = model_rows(pd.read_parquet(Path(dataset) / MANIFEST), run)
    summary.unchecked = unchecked(manifest.columns)
    patients = manifest["patient_id"].astype(str)
    usable = manifest["array_key"].notna() & (manifest.get("qc_status", "pass") == "pass")
    train = with_intensity(dataset, manifest[patients.isin(split["train"]) & usable], "array_key")
    profile = TrainingProfile.of(train)
    val = manifest[patients.isin(split["val"]) & usable]
    val_u = uncertainty(score_rows(run, dataset, val, clips, batch_size, device)) if len(val) else np.zeros(0)
    summary.threshold, summary.validation_rows = abstention_threshold(val_u, coverage), len(val)

    out_dir = Path(dataset) / PREDICTIONS_DIR / f"{model}-v{version.version}"
    previous = pd.read_parquet(out_dir / "predictions.parquet") if (out_dir / "predictions.parquet").is_file() else None
    done = set(previous["instance_id"].astype(str)) if previous is not None else set()
    seen = set().union(*split.values())
    new = manifest[~patients.isin(seen) & ~manifest["instance_id"].astype(str).isin(done)]
    new = with_intensity(dataset, new, "array_key")
    reasons = refusal_reasons(new, profile, max_z)
    frame = new[[c for c in ID_COLUMNS if c in new.columns]].copy()
    frame["status"], frame["reason"] = np.where(reasons != "", "refused", "scored"), reasons.to_numpy()
    ok = (reasons == "").to_numpy()
    if ok.any():
        scored = score_rows(run, dataset, new[ok], clips, batch_size, device)
        u = uncertainty(scored)
        frame.loc[ok, "uncertainty"] = u
        for name, values in _named(run, scored).items():
            frame.loc[ok, name] = values
        if summary.threshold is not None:
            abstain = ok.copy()
            abstain[ok] = u > summary.threshold
            frame.loc[abstain, "status"] = "abstain"
    summary.scored = int((frame["status"] == "scored").sum())
    summary.abstained = int((frame["status"] == "abstain").sum())
    summary.refused = {str(k): int(v) for k, v in frame.loc[~ok, "reason"].value_counts().items()}
    frame = frame if previous is None else pd.concat([previous, frame], ignore_index=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "predictions.parquet", frame.to_parquet(index=False))
    per_patient = patient_level(frame, summary.threshold)
    atomic_write_bytes(out_dir / "patients.parquet", per_patient.to_parquet(index=False))
    summary.patients = len(per_patient)
    log.info("%s v%s: %d scored, %d abstained, %d refused", model, version.version, summary.scored,
             summary.abstained, sum(summary.refused.values()))  # fmt: skip
    return summary


def _named(run: TrainedRun, scored: Scored) -> dict[str, np.ndarray]:
    """Prediction columns plus the predicted class for classifiers."""
    cols = dict(scored.columns)
    cols.pop("uncertainty", None)
    classes = getattr(run.objective, "classes", None)
    if run.task == "classification" and classes:
        probs = np.stack([cols[f"prob_{k}"] for k in classes], axis=1)
        cols["predicted_class"] = np.asarray(classes, dtype=object)[probs.argmax(1)]
    return cols


def patient_level(frame: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """Mean over each patient's scored instances (abstained included); abstain when the mean ``u`` exceeds it."""
    live = frame[frame["status"] != "refused"]
    if live.empty:
        return pd.DataFrame({"patient_id": [], "instances": [], "status": []})
    numeric = [c for c in live.columns if c not in ID_COLUMNS and pd.api.types.is_numeric_dtype(live[c])]
    out = live.groupby("patient_id")[numeric].mean().reset_index()
    out.insert(1, "instances", live.groupby("patient_id").size().to_numpy())
    if "predicted_class" in live:
        probs = [c for c in numeric if c.startswith("prob_")]
        out["predicted_class"] = [c[len("prob_") :] for c in out[probs].idxmax(axis=1)]
    out["status"] = "scored" if threshold is None else np.where(out["uncertainty"] > threshold, "abstain", "scored")
    return out
