"""train → promote → predict through a real Prefect server and a real (embedded SQLite) MLflow store.

Two runs with the same options and seed: the first becomes champion (there is none), the second is
identical, so every paired difference on the shared held-out patients is 0: non-inferior, but not better,
hence refused with that reason. Then the champion scores the patients that arrived without labels; inputs it
must not score (a QC failure, a modality it never saw, a saturated view) are refused with their reasons.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from tasks.locations import LocationKind, Locations, register_location
from tasks.registry.store import CHAMPION, client
from tasks.synth.views import save_labels, write_view_dataset

pytestmark = pytest.mark.slow
OPTIONS = {"target_col": "ef_class", "backbone": "cnn3d", "frames": 4, "size": 16, "epochs": 1, "num_workers": 0,
           "test_clips": 2, "batch_size": 8}  # fmt: skip


async def _events(name: str) -> list[dict]:
    from prefect import get_client

    async with get_client() as c:
        response = await c._client.post("/events/filter", json={"filter": {"event": {"name": [name]}}})
        response.raise_for_status()
        return response.json()["events"]


def _add_unscorable(root: Path) -> None:
    """Three new unlabelled instances: QC failed, an unseen modality, a saturated (all-white) view."""
    manifest = pd.read_parquet(root / "manifest.parquet")
    group = zarr.open_group(root / "store.zarr", mode="a")
    template = manifest.iloc[-1]
    rows = []
    for suffix, change in (("QC", {"qc_status": "fail"}), ("MR", {"modality": "MR"}), ("WHITE", {})):
        row = template.to_dict() | change | {"instance_id": f"{template['instance_id']}-{suffix}"}
        if suffix == "WHITE":
            key = f"views/{row['instance_id']}"
            group.create_array(key, data=np.full(group[template["view_key"]].shape, 255, np.uint8))
            row |= {"view_key": key, "zarr_key": key}
        rows.append(row)
    pd.concat([manifest, pd.DataFrame(rows)], ignore_index=True).to_parquet(root / "manifest.parquet", index=False)


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


def test_train_promote_predict(prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.drift import drift
    from flows.predict import predict
    from flows.promote import promote
    from flows.train import train

    state = tmp_path / "state"
    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(state))
    monkeypatch.setenv("MEDFLOW_MLFLOW", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    labels = write_view_dataset(tmp_path / "ds", patients=30, seed=5, frames=24, size=32)
    labels["ef_class"] = pd.cut(labels["ef"], [0, 45, 100], labels=["reduced", "normal"]).astype(str)
    save_labels(labels.iloc[:24], tmp_path / "labels.csv")  # six patients arrive later, unlabelled
    dataset = register_location(state, LocationKind.DATASET, tmp_path / "ds")
    labels_name = register_location(state, LocationKind.LABELS, tmp_path / "labels.csv")

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

    _add_unscorable(tmp_path / "ds")
    (report,) = drift(dataset)
    new_instances = pd.read_parquet(tmp_path / "ds" / "manifest.parquet")["patient_id"].isin(labels["patient_id"][24:])
    assert report["model"] == model and report["new_rows"] == int(new_instances.sum()) and report["drifted"] == []
    counts = predict(dataset, model)
    assert counts["version"] == 1 and counts["threshold"] is not None and counts["validation_rows"] >= 1
    assert counts["refused"] == {"qc-failed": 1, "unseen-modality": 1, "intensity-out-of-distribution": 1}
    out = Locations(state, {}).path(LocationKind.DATASET, dataset) / "predictions" / f"{model}-v1"
    instances = pd.read_parquet(out / "predictions.parquet")
    new_patients = set(labels["patient_id"].iloc[24:])
    assert set(instances["patient_id"]) == new_patients  # only patients the model never saw
    live = instances[instances["status"] != "refused"]
    assert counts["scored"] + counts["abstained"] == len(live) > 0
    assert live[["prob_normal", "prob_reduced", "uncertainty"]].notna().all().all()
    assert instances.loc[instances["status"] == "refused", "prob_normal"].isna().all()  # never scored
    assert (live["status"] == np.where(live["uncertainty"] > counts["threshold"], "abstain", "scored")).all()
    patients = pd.read_parquet(out / "patients.parquet")
    assert set(patients["patient_id"]) <= new_patients and patients["predicted_class"].isin(["normal", "reduced"]).all()

    assert predict(dataset, model)["scored"] == 0  # nothing new the second time
    promoted = [e for e in asyncio.run(_events("medflow.model.promoted")) if e["payload"].get("model") == model]
    assert [e["payload"]["version"] for e in promoted] == [1]
