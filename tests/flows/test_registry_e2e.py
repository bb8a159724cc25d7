"""ingest → train → promote → predict through a real Prefect server and a real (embedded SQLite) MLflow store.

A synthetic echo cohort (DICOM with header and burned-in PHI) arrives in two exports. The first is ingested
(flow ``ingest``) and its outcomes de-identified; two runs with the same options and seed follow: the first
becomes champion (there is none), the second is identical, so every paired difference on the shared held-out
patients is 0: non-inferior, but not better, hence refused with that reason. The second export brings patients
without labels; among them inputs the champion must not score, made at the DICOM level: a CT series (a kind it
never saw), a clip too short for QC, and an inverted (white background) clip. ``drift`` and ``predict`` follow;
the head is evidential, so the uncertainty that decides abstention is the evidential ``u`` (the spread over two
test-time clips of a tiny one-epoch model is ~1e-7, float noise).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from tasks.locations import LocationKind, Locations, register_location
from tasks.predict.profile import VIEW_UNCHECKED
from tasks.registry.store import CHAMPION, client
from tests.server_events import events
from tests.tasks.ingest.sources import write_key

pytestmark = pytest.mark.slow
PATIENTS, LATER = 24, 4  # the last LATER patients come in the second export, unlabelled
OPTIONS = {"id_col": "mrn", "target_col": "ef_class", "head": "evidential", "backbone": "cnn3d", "frames": 4,
           "size": 16, "epochs": 1, "num_workers": 0, "test_clips": 2, "batch_size": 8}  # fmt: skip
INGEST = {"workers": 0, "clean_pixels": "off", "target_fps": 15.0, "view_size": 16, "audit": False}


async def _markdown(key: str) -> str:
    """The latest markdown of the artifact ``key``."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as c:
        found = await c.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return str(max(found, key=lambda a: a.created).data)


def _rewrite(path: Path, change) -> None:
    """Decode ``path``, apply ``change`` to its frames, write it back uncompressed."""
    ds = pydicom.dcmread(path)
    frames = change(ds.pixel_array)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData, ds.NumberOfFrames = np.ascontiguousarray(frames).tobytes(), len(frames)
    if "PhotometricInterpretation" in ds and ds.SamplesPerPixel == 3:
        ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
    ds.save_as(path, enforce_file_format=True)


def _exports(tmp_path: Path, key: Path) -> tuple[Path, Path, Path]:
    """The cohort split into a first (labelled) and a second (unlabelled) export; de-identified labels."""
    from tasks.deid.keys import load_key
    from tasks.deid.pseudonyms import Pseudonymizer
    from tasks.deid.table import deidentify_table
    from tasks.synth.cohort import make_cohort

    cohort = tmp_path / "cohort"
    make_cohort(cohort, patients=PATIENTS, seed=3, volume_every=PATIENTS)  # the last patient also has a CT series
    first, second = tmp_path / "export1", tmp_path / "export2"
    folders = sorted((cohort / "dicom").iterdir())
    for folder in folders[:-LATER]:
        shutil.copytree(folder, first / folder.name)
    for folder in folders[-LATER:]:
        shutil.copytree(folder, second / folder.name)
    clips = sorted(second.glob("*/study1/echo/0001.dcm"))
    _rewrite(clips[0], lambda f: f[:8])  # 8 frames: fails QC
    _rewrite(clips[1], lambda f: 255 - f)  # inverted: a white background the model never saw
    outcomes = pd.read_csv(cohort / "outcomes.csv", dtype=str).iloc[: PATIENTS - LATER]
    outcomes["ef_class"] = np.where(outcomes["ef"].astype(float) < 45, "reduced", "normal")
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    labels = tmp_path / "labels.csv"
    deidentify_table(tmp_path / "outcomes.csv", labels, Pseudonymizer(load_key(key)), id_col="mrn",
                     date_cols=["study_date", "followup_date"], keep=["ef_class", "sex", "group"],
                     age_cols=["age"])  # fmt: skip
    return first, second, labels


def _check_tracking(state: Path, run_dir: Path, tmp_path: Path) -> None:
    """The run in MLflow: params without paths, manifest hash, per-epoch metrics, artifacts, its evaluation."""
    import yaml

    from tasks.evaluate.options import EvaluationOptions
    from tasks.evaluate.run import evaluate_run
    from tasks.registry.tracking import read_record

    assert (state / "mlflow" / "mlflow.db").is_file()  # the embedded default store
    record = read_record(run_dir)
    c = client(state)
    run = c.get_run(record["mlflow_run_id"])
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert run.data.tags["manifest_sha256"] == config["manifest_sha256"] and run.info.run_name == config["run_id"]
    assert run.data.params["backbone"] == "cnn3d" and run.data.params["dataset"] == record["dataset"]
    logged = " ".join([*run.data.params.values(), *run.data.tags.values()])
    assert str(tmp_path) not in logged and "/" not in logged
    assert {"train_loss", "val_loss"} <= set(run.data.metrics) and c.get_metric_history(run.info.run_id, "val_loss")
    assert {"config.yaml", "metrics.json", "checkpoints"} <= {a.path for a in c.list_artifacts(run.info.run_id)}
    assert [a.path for a in c.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/best.ckpt"]
    public = Path(c.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path / "dl"))).read_text()
    assert str(tmp_path) not in public
    metrics = evaluate_run(run_dir, EvaluationOptions(n_resamples=50, model_checks=False))
    version = c.get_model_version(record["model"], str(record["version"]))
    assert version.run_id == run.info.run_id and version.tags["medflow.run_id"] == config["run_id"]
    assert float(version.tags["eval.accuracy"]) == pytest.approx(metrics["accuracy"], rel=1e-5)
    assert {"evaluation/report.html", "evaluation/metrics.json"} <= {
        a.path for a in c.list_artifacts(run.info.run_id, "evaluation")
    }


def test_ingest_train_promote_predict(prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.drift import drift
    from flows.ingest import ingest
    from flows.predict import predict
    from flows.promote import promote
    from flows.train import train

    state = tmp_path / "state"
    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(state))
    monkeypatch.setenv("MEDFLOW_MLFLOW", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    key = write_key(tmp_path / "deid.key")  # a fixed key: the same pseudonyms, hence the same split, every run
    first_export, second_export, labels_csv = _exports(tmp_path, key)
    dataset = register_location(state, LocationKind.DATASET, tmp_path / "ds")
    key_name = register_location(state, LocationKind.KEY, key)
    labels_name = register_location(state, LocationKind.LABELS, labels_csv)

    ingested = ingest(register_location(state, LocationKind.SOURCE, first_export), dataset, key_name, **INGEST)
    assert ingested["stored"] == ingested["discovered"] > 0 and ingested["quarantined"] == 0

    first = train(dataset, labels_name, "classification", OPTIONS)
    _check_tracking(state, Locations(state, {}).path(LocationKind.RUN, first["run_dir"]), tmp_path)
    decision = promote(first["run_dir"], n_resamples=200)
    assert decision["promoted"] and decision["reasons"] == ["first version of this model: no champion to compare with"]
    model = decision["model"]
    assert model == f"{dataset}-classification-ef-class"

    second = train(dataset, labels_name, "classification", OPTIONS)
    decision = promote(second["run_dir"], n_resamples=200)
    assert not decision["promoted"] and decision["champion"] == 1 and decision["challenger"] == 2
    assert len(decision["reasons"]) == 1 and "not better than the champion" in decision["reasons"][0], decision
    assert decision["patients"] >= 3 and {r["improvement"] for r in decision["table"] if r["group"] == "all"} == {0.0}
    mlflow = client(state)
    assert int(mlflow.get_model_version_by_alias(model, CHAMPION).version) == 1
    assert mlflow.get_model_version(model, "2").tags["promotion"] == "refused"
    run2 = mlflow.get_model_version(model, "2").run_id
    assert decision["mlflow_run_id"] == run2 and sorted(decision["plots"]) == [
        "promotion/bootstrap.png", "promotion/decision.html", "promotion/subgroups.png"]  # fmt: skip
    assert {a.path for a in mlflow.list_artifacts(run2, "promotion")} == set(decision["plots"])
    page = Path(mlflow.download_artifacts(run2, "promotion/decision.html", str(tmp_path / "dl"))).read_text()
    assert page.count("data:image/png;base64,") == 2 and "not better than the champion" in page
    markdown = asyncio.run(_markdown("promotion-decision"))
    assert run2 in markdown and "`promotion/decision.html`" in markdown and str(tmp_path) not in markdown

    before = pd.read_parquet(tmp_path / "ds" / "manifest.parquet")
    later = ingest(register_location(state, LocationKind.SOURCE, second_export), dataset, key_name, **INGEST)
    manifest = pd.read_parquet(tmp_path / "ds" / "manifest.parquet")
    new_patients = set(manifest["patient_id"]) - set(before["patient_id"])
    assert later["new_rows"] == len(manifest) - len(before) > 0 and len(new_patients) == LATER
    (report,) = drift(dataset)
    assert report["model"] == model and report["new_rows"] == later["new_rows"]
    counts = predict(dataset, model, coverage=0.5)  # evidential u; half the validation instances: some abstain
    assert counts["version"] == 1 and counts["threshold"] is not None and counts["validation_rows"] >= 1
    assert counts["unchecked"] == [VIEW_UNCHECKED]  # ingest records no echo view: said, not silently passed
    assert counts["refused"] == {"qc-failed": 1, "unseen-kind": 1, "intensity-out-of-distribution": 1}, counts
    out = Locations(state, {}).path(LocationKind.DATASET, dataset) / "predictions" / f"{model}-v1"
    instances = pd.read_parquet(out / "predictions.parquet")
    assert set(instances["patient_id"]) == new_patients  # only patients the model never saw
    live = instances[instances["status"] != "refused"]
    assert counts["scored"] + counts["abstained"] == len(live) and counts["scored"] >= 1 and counts["abstained"] >= 1
    assert live[["prob_normal", "prob_reduced", "uncertainty"]].notna().all().all()
    assert instances.loc[instances["status"] == "refused", "prob_normal"].isna().all()  # never scored
    assert (live["status"] == np.where(live["uncertainty"] > counts["threshold"], "abstain", "scored")).all()
    patients = pd.read_parquet(out / "patients.parquet")
    assert set(patients["patient_id"]) <= new_patients and patients["predicted_class"].isin(["normal", "reduced"]).all()

    assert predict(dataset, model)["scored"] == 0  # nothing new the second time
    promoted = [e for e in events("medflow.model.promoted") if e["payload"].get("model") == model]
    assert [e["payload"]["version"] for e in promoted] == [1]
