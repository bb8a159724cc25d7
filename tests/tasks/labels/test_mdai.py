"""MD.ai export → labels table and OME-Zarr labels, on a dataset ingested from a synthetic cohort.

The export is built from MD.ai's documented layout (no network): exam, series and image labels, a box, a free-form
polygon, a mask with a hole and a box on a volume slice, referring to original UIDs (annotated in the hospital) and
to de-identified ones, plus rows that must be refused."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import zarr

from models.table import LabelSpec, load_table, read_labels
from tasks.deid.context import DeidContext
from tasks.deid.keys import DeidKey
from tasks.deid.pseudonyms import Pseudonymizer
from tasks.errors import ConfigError
from tasks.ingest.folder import ingest_folder
from tasks.labels.importer import import_mdai
from tasks.labels.mdai import parse_export
from tasks.labels.raster import draw
from tasks.synth import make_cohort

ROOT = Path(__file__).resolve().parents[3]
VALIDATORS = Path(os.environ.get("MEDFLOW_VALIDATORS_PYTHON", ROOT / ".venv-validators" / "bin" / "python"))
if not VALIDATORS.exists():  # a worktree shares the main checkout's validator venv
    VALIDATORS = Path("/work/main/.venv-validators/bin/python")
KEY = DeidKey(b"m" * 32)


def _labels() -> list[dict]:
    return [
        {"id": "G_view", "name": "View", "labels": [
            {"id": "L_a4c", "name": "A4C", "scope": "EXAM", "type": "GLOBAL", "annotationMode": None},
            {"id": "L_plax", "name": "PLAX", "scope": "EXAM", "type": "GLOBAL", "annotationMode": None}]},
        {"id": "G_quality", "name": "Image quality", "labels": [
            {"id": "L_good", "name": "good", "scope": "SERIES", "type": "GLOBAL", "annotationMode": None},
            {"id": "L_blur", "name": "blurred frame", "scope": "INSTANCE", "type": "GLOBAL", "annotationMode": None}]},
        {"id": "G_anatomy", "name": "Anatomy", "labels": [
            {"id": "L_lv", "name": "LV", "scope": "INSTANCE", "type": "LOCAL", "annotationMode": "bbox"},
            {"id": "L_la", "name": "LA", "scope": "INSTANCE", "type": "LOCAL", "annotationMode": "freeform"},
            {"id": "L_myo", "name": "myocardium", "scope": "INSTANCE", "type": "LOCAL", "annotationMode": "mask"},
            {"id": "L_lesion", "name": "lesion", "scope": "INSTANCE", "type": "LOCAL", "annotationMode": "bbox"}]},
    ]  # fmt: skip


def test_parse_and_draw_are_pure() -> None:
    parsed = parse_export({"datasets": [{"annotations": [{"labelId": "L_lv", "SOPInstanceUID": "1.2", "frameNumber": 3,
                                                          "data": {"x": 1, "y": 2, "width": 3, "height": 2}}]}],
                           "labelGroups": _labels()})  # fmt: skip
    assert parsed.labels["L_lv"].is_region and not parsed.labels["L_a4c"].is_region
    assert parsed.labels["L_blur"].scope.value == "image" and parsed.annotations[0].frame == 3
    plane = np.zeros((8, 8), np.uint16)
    assert draw(plane, "bbox", {"x": 1, "y": 2, "width": 3, "height": 2}, 5) == 6 and plane[2:4, 1:4].min() == 5
    ring = {"foreground": [[[0, 0], [7, 0], [7, 7], [0, 7]]], "background": [[[2, 2], [5, 2], [5, 5], [2, 5]]]}
    plane[:] = 0
    assert draw(plane, "mask", ring, 1) > 0 and plane[0, 0] == 1 and plane[3, 3] == 0
    assert draw(plane, "bbox", {"x": "?"}, 1) == 0
    with pytest.raises(ConfigError, match=r"not an MD\.ai annotation export"):
        parse_export([])


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    src = tmp_path_factory.mktemp("mdai-src")
    make_cohort(src, patients=2, seed=5, volume_every=2)
    out = tmp_path_factory.mktemp("mdai-dataset")
    summary = ingest_folder(src / "dicom", out, DeidContext.create(KEY, clean_pixels="off"), workers=1, run_id="mdai")
    assert summary.stored >= 4
    return src / "dicom", out


def _originals(source: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(source.rglob("*.dcm"))]


@pytest.mark.slow
def test_import_joins_through_the_pseudonyms_and_writes_valid_ome_labels(ingested: tuple[Path, Path],
                                                                        tmp_path: Path) -> None:  # fmt: skip
    source, dataset = ingested
    pseudo = Pseudonymizer(KEY)
    manifest = pd.read_parquet(dataset / "manifest.parquet")
    videos = manifest[manifest["kind"] == "video"].sort_values("instance_id")
    originals = {pseudo.uid(ds.SOPInstanceUID): ds for ds in _originals(source)}
    stored = [originals[i] for i in videos["instance_id"] if i in originals]
    cine = next(ds for ds in stored if int(ds.get("NumberOfFrames", 1)) > 4)
    other = next(ds for ds in stored if ds.StudyInstanceUID != cine.StudyInstanceUID)
    slices = [ds for ds in originals.values() if ds.Modality in ("CT", "MR")]
    deid_series = manifest.loc[manifest["instance_id"] == pseudo.uid(other.SOPInstanceUID), "series_id"].iloc[0]

    def u(ds: pydicom.Dataset) -> dict[str, str]:
        return {"StudyInstanceUID": str(ds.StudyInstanceUID), "SeriesInstanceUID": str(ds.SeriesInstanceUID),
                "SOPInstanceUID": str(ds.SOPInstanceUID)}  # fmt: skip

    rows = [
        {**u(cine), "labelId": "L_a4c", "createdById": "U_1"},  # exam label on original UIDs
        {**u(cine), "labelId": "L_a4c", "createdById": "U_2"},
        {**u(cine), "labelId": "L_plax", "createdById": "U_3"},  # outvoted
        {"StudyInstanceUID": pseudo.uid(other.StudyInstanceUID), "labelId": "L_plax", "createdById": "U_1"},  # de-id
        {"SeriesInstanceUID": deid_series, "labelId": "L_good", "createdById": "U_2"},
        {**u(cine), "labelId": "L_blur", "frameNumber": 1, "createdById": "U_1"},
        {**u(cine), "labelId": "L_lv", "frameNumber": 2, "data": {"x": 40, "y": 50, "width": 20, "height": 10},
         "createdById": "U_1"},
        {**u(cine), "labelId": "L_la", "frameNumber": 3, "data": {"vertices": [[70, 30], [90, 30], [80, 45]]},
         "createdById": "U_2"},
        {**u(cine), "labelId": "L_myo", "frameNumber": 0, "createdById": "U_2",
         "data": {"foreground": [[[10, 10], [40, 10], [40, 40], [10, 40]]],
                  "background": [[[20, 20], [30, 20], [30, 30], [20, 30]]]}},
        {**u(cine), "labelId": "L_lv", "frameNumber": 10_000, "data": {"x": 1, "y": 1, "width": 2, "height": 2}},
        {"StudyInstanceUID": "1.2.3.4.999", "SOPInstanceUID": "1.2.3.4.999.1", "labelId": "L_a4c"},  # matches nothing
        {**u(cine), "labelId": "L_unknown"},
    ]  # fmt: skip
    if slices:
        rows.append({**u(slices[0]), "labelId": "L_lesion", "data": {"x": 5, "y": 6, "width": 4, "height": 3}})
    export = tmp_path / "export.json"
    datasets = [{"id": "D_1", "name": "echo", "studies": [], "annotations": rows}]
    export.write_text(json.dumps({"id": "P_x", "datasets": datasets, "labelGroups": _labels()}))

    summary = import_mdai(export, dataset, pseudo)
    assert summary.refused == {"no-match": 1, "unknown-label": 1, "outside-timeline": 1}
    assert summary.matched_by["deidentified"] == 2 and summary.matched_by["pseudonym"] >= 7
    assert summary.regions == 3 + bool(slices) and summary.label_images == 1 + bool(slices)

    table = read_labels(dataset / "labels" / "mdai-labels.csv")  # the record medflow train checks
    cine_patient = manifest.loc[manifest["instance_id"] == pseudo.uid(cine.SOPInstanceUID), "patient_id"].iloc[0]
    by_patient = table.set_index("patient_id")
    assert by_patient.loc[cine_patient, "view"] == "A4C"  # majority of three annotators
    assert set(table.columns) >= {"patient_id", "view", "image_quality", "anatomy"}
    joined = load_table(dataset, table, LabelSpec("classification", target_col="view"))
    assert set(joined["target"]) <= {"A4C", "PLAX"} and len(joined) >= 2

    key = pseudo.uid(cine.SOPInstanceUID)
    label = np.asarray(zarr.open_array(dataset / "store.zarr" / key / "labels" / "mdai" / "0", mode="r")[...])
    image = zarr.open_array(dataset / "store.zarr" / key / "0", mode="r")
    assert label.shape == image.shape[:3] and label.dtype == np.uint16
    values = {r["label"]: r for r in pd.read_parquet(dataset / "labels" / "mdai-regions.parquet").to_dict("records")}
    assert (label[2, 50:60, 40:60] == values["LV"]["label_value"]).all() and not label[2, :50].any()
    assert label[3, 35, 80] == values["LA"]["label_value"] and label[0, 12, 12] == values["myocardium"]["label_value"]
    assert label[0, 25, 25] == 0  # the mask's hole
    assert values["LV"]["view_frame"] is not None and list(values["LV"]["frames"]) == [2]
    annotations = pd.read_parquet(dataset / "labels" / "mdai-annotations.parquet")
    assert set(annotations["annotator"]) <= {"annotator-1", "annotator-2", "annotator-3", "annotator-4"}
    for path in (dataset / "labels").iterdir():  # no annotator id, no original UID in what was written
        content = path.read_bytes().decode("latin-1")
        assert "U_1" not in content and str(cine.SOPInstanceUID) not in content, path.name

    done = subprocess.run([str(VALIDATORS), str(ROOT / "tests/validators/ome_check.py"), str(dataset / "store.zarr")],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    verdict = json.loads(done.stdout)["models"]
    assert verdict[key] == "ok" and verdict[f"{key}/labels"] == "ok" and verdict[f"{key}/labels/mdai"] == "ok"
    assert all(v == "ok" for v in verdict.values()), {k: v for k, v in verdict.items() if v != "ok"}

    assert import_mdai(export, dataset, pseudo).regions == summary.regions  # a re-import replaces, idempotent
    original = tmp_path / "original.json"  # original UIDs under another key: nothing joins, nothing is written
    original.write_text(json.dumps({"datasets": [{"annotations": rows[:3]}], "labelGroups": _labels()}))
    with pytest.raises(ConfigError, match=r"no row of the MD\.ai export matches"):
        import_mdai(original, dataset, Pseudonymizer(DeidKey(b"w" * 32)))


@pytest.mark.slow
def test_the_import_mdai_flow_takes_location_names_and_returns_counts(
    prefect_server: str, ingested: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.labels import import_mdai_labels
    from tasks.locations import LocationKind, Locations, register_location

    source, dataset = ingested
    state = tmp_path / "state"
    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(state))
    monkeypatch.delenv("MEDFLOW_DEID_KEY", raising=False)
    key = tmp_path / "deid.key"
    key.write_text(KEY.secret.hex())
    key.chmod(0o600)
    first = _originals(source)[0]
    rows = [{"StudyInstanceUID": str(first.StudyInstanceUID), "labelId": "L_a4c"}, {"StudyInstanceUID": "9.9"}]
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"datasets": [{"annotations": rows}], "labelGroups": _labels()}))
    summary = import_mdai_labels(register_location(state, LocationKind.LABELS, export),
                                 register_location(state, LocationKind.DATASET, dataset),
                                 register_location(state, LocationKind.KEY, key))  # fmt: skip
    assert summary["accepted"] == 1 and summary["refused"] == {"unknown-label": 1} and summary["keyed"]
    assert summary["labels"].startswith("labels-")
    table = read_labels(Locations(state, {}).path(LocationKind.LABELS, summary["labels"]))
    assert table["view"].tolist() == ["A4C"]
