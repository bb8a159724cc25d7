"""Write a contract-shaped training dataset (``store.zarr`` + ``manifest.parquet``) straight from the phantom.

This skips DICOM, de-identification and ingest: it exists so the model code can be tested and
benchmarked on its own, at any size, following the "Dataset on disk" contract (training views are
uint8 (T, 112, 112) at ``view_fps``). Patients carry pseudonymous ids (``SYN00001``); the returned
labels table has the outcome columns with ``patient_id`` instead of ``mrn``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from tasks.synth import phantom
from tasks.synth.people import draw_patient

VIEW_SIZE = 112
VIEW_FPS = 50.0


def write_view_dataset(
    root: Path,
    patients: int,
    seed: int = 0,
    *,
    frames: int = 64,
    size: int = VIEW_SIZE,
    fail_fraction: float = 0.0,
    volumes: int = 0,
    fps: float | None = None,
    ef: tuple[float, float] | None = None,
    id_prefix: str = "SYN",
) -> pd.DataFrame:
    """Write ``root/store.zarr`` and ``root/manifest.parquet``; return the per-patient labels table.

    ``fail_fraction`` marks that share of videos ``qc_status="fail"``; ``volumes`` adds int16 CT volumes.
    A site of a federation differs by ``fps`` (the views' frame rate, default ``VIEW_FPS``), ``ef`` (mean and SD
    of its patients' ejection fraction, default the cohort's mix: it sets the label and the phantom's motion; the
    simulated outcome keeps the cohort's draw) and ``id_prefix`` (its own pseudonyms).
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(root / "store.zarr", mode="w", zarr_format=3)
    rows, labels = [], []
    view_fps = float(fps or VIEW_FPS)
    for index in range(patients):
        p = draw_patient(rng, index)
        if ef is not None:
            p = dataclasses.replace(p, ef=round(float(np.clip(rng.normal(*ef), 15, 78)), 1))
        pid = f"{id_prefix}{index:05d}"
        study = f"{pid}-S1"
        labels.append({"patient_id": pid, "study_date": p.study_date.isoformat(),
                       "followup_date": p.followup_date.isoformat(), "event": p.event, "ef": p.ef,
                       "age": p.age, "sex": p.sex, "group": p.group})  # fmt: skip
        n_clips = 1 if rng.random() < 0.6 else 2
        heart_rate = float(rng.uniform(50, 100))
        for clip in range(n_clips):
            params = phantom.EchoParams(
                frames=frames,
                height=size,
                width=size,
                fps=view_fps,
                ef=p.ef,
                heart_rate=heart_rate,
                phase=float(rng.random()),
                ed_radius=float(rng.uniform(0.26, 0.36)),
                tilt_deg=float(rng.uniform(-12, 12)),
                top_bar=0,
            )
            video = phantom.echo_frames(params, rng)
            instance = f"{study}-V{clip + 1}"
            key = f"views/{instance}"
            group.create_array(key, data=video, chunks=(16, size, size))
            row = _row(pid, study, instance, "US", "video", key, video.shape, p, rng.random() < fail_fraction)
            rows.append({**row, "source_fps": view_fps, "view_fps": view_fps, "spacing_t": 1.0 / view_fps})
    for k in range(volumes):
        p = draw_patient(rng, patients + k)
        pid = f"{id_prefix}{patients + k:05d}"
        vol = phantom.volume((16, 64, 64), "CT", rng)
        key = f"native/{pid}-CT"
        arr = group.create_array(key, data=vol, chunks=vol.shape)
        arr.attrs["intensity"] = {"window_center": 40.0, "window_width": 400.0}
        row = _row(pid, f"{pid}-S1", f"{pid}-CT", "CT", "volume", key, vol.shape, p, False)
        row.update(view_key=None, view_fps=None, source_fps=None, spacing_t=None, spacing_z=2.5)
        rows.append(row)
        labels.append({"patient_id": pid, "study_date": p.study_date.isoformat(),
                       "followup_date": p.followup_date.isoformat(), "event": p.event, "ef": p.ef,
                       "age": p.age, "sex": p.sex, "group": p.group})  # fmt: skip
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)
    return pd.DataFrame(labels)


def save_labels(labels: pd.DataFrame, path: Path) -> Path:
    """Write the labels of :func:`write_view_dataset` as training reads them: CSV plus its de-identification record
    (the ids are already the dataset's pseudonymous ones, so nothing is re-keyed; every column is kept)."""
    from tasks.deid.table import write_labels

    write_labels(labels, path, id_col="patient_id", date_cols=("study_date", "followup_date"),
                 source="synthetic labels (tasks.synth.views)")  # fmt: skip
    return path


def _row(pid: str, study: str, instance: str, modality: str, kind: str, key: str, shape: tuple[int, ...],
         p, failed: bool) -> dict:  # fmt: skip
    return {
        "instance_id": instance,
        "patient_id": pid,
        "study_id": study,
        "series_id": f"{study}-SE1",
        "modality": modality,
        "kind": kind,
        "zarr_key": key,
        "view_key": key,
        "frames": shape[0],
        "height": shape[1],
        "width": shape[2],
        "channels": 1,
        "source_fps": VIEW_FPS,
        "view_fps": VIEW_FPS,
        "spacing_t": 1.0 / VIEW_FPS,
        "spacing_z": None,
        "spacing_y": 0.1,
        "spacing_x": 0.1,
        "study_date": (p.study_date + dt.timedelta(days=0)).isoformat(),
        "sex": p.sex,
        "age_years": float(p.age),
        "qc_status": "fail" if failed else "pass",
        "qc_failures": "synthetic_fail" if failed else "",
    }
