"""``medflow ingest --keep-deid`` keeps de-identified DICOM, and the ``export`` flow sends it to a real Orthanc by
STOW-RS and by C-STORE (the whole dataset, then a manifest selection); Orthanc then holds exactly those instances,
under their pseudonymous UIDs, and the original UIDs nowhere."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pydicom
import pytest

from tasks.deid.context import DeidContext
from tasks.deid.keys import DeidKey
from tasks.errors import MedflowError
from tasks.ingest.folder import ingest_folder
from tasks.ingest.options import IngestOptions
from tasks.locations import LocationKind, register_location
from tasks.synth import make_cohort
from tests.tasks.sources.orthanc import Orthanc

pytestmark = pytest.mark.slow


def _held(orthanc: Orthanc, sop_uids: set[str]) -> dict[str, str]:
    """SOP Instance UID → Orthanc study id, for the given instances Orthanc holds."""
    held = {}
    for uid in sop_uids:
        found = orthanc.call("POST", "/tools/find", {"Level": "Instance", "Query": {"SOPInstanceUID": uid},
                                                     "Expand": True})  # fmt: skip
        for item in found:
            held[uid] = orthanc.call("GET", f"/instances/{item['ID']}/study")["ID"]
    return held


def test_export_sends_the_deidentified_dicom_by_stow_and_c_store(
    orthanc: Orthanc, prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.export import export

    src, dataset = tmp_path / "src", tmp_path / "ds"
    make_cohort(src, patients=2, seed=8, volume_every=100)
    ctx = DeidContext.create(DeidKey(b"e" * 32), clean_pixels="off")
    ingest_folder(src / "dicom", dataset, ctx, IngestOptions(keep_deid=True), workers=1, run_id="export")
    files = sorted((dataset / "deid").rglob("*.dcm"))
    originals = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((src / "dicom").rglob("*.dcm"))]
    manifest = pd.read_parquet(dataset / "manifest.parquet")
    assert len(files) == len(originals) == len(manifest) >= 2
    kept = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    assert {str(d.SOPInstanceUID) for d in kept} == set(manifest["instance_id"])  # the stored ids
    assert all(d.PatientIdentityRemoved == "YES" for d in kept)

    state = tmp_path / "state"
    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(state))
    name = register_location(state, LocationKind.DATASET, dataset)
    sent = set(manifest["instance_id"])
    try:
        by_stow = export(name, "dicomweb", url=orthanc.dicomweb)
        assert by_stow == {"dataset": name, "to": "dicomweb", "selected": len(files), "sent": len(files), "failed": 0,
                           "failures": {}}  # fmt: skip
        assert set(_held(orthanc, sent)) == sent
        for study in set(_held(orthanc, sent).values()):
            orthanc.call("DELETE", f"/studies/{study}")

        one = manifest.iloc[[0]][["patient_id"]]
        one.to_csv(tmp_path / "selection.csv", index=False)
        selection = register_location(state, LocationKind.LABELS, tmp_path / "selection.csv")
        by_dimse = export(name, "dimse", host="127.0.0.1", port=orthanc.dicom_port, called_aet=orthanc.aet,
                          selection=selection)  # fmt: skip
        chosen = set(manifest.loc[manifest["patient_id"] == one.iloc[0, 0], "instance_id"])
        assert by_dimse["sent"] == by_dimse["selected"] == len(chosen) < len(files) and by_dimse["failed"] == 0
        assert set(_held(orthanc, sent)) == chosen
        assert not _held(orthanc, {str(d.SOPInstanceUID) for d in originals})  # no original UID reached Orthanc
    finally:
        for study in set(_held(orthanc, sent).values()):
            orthanc.call("DELETE", f"/studies/{study}")
    with pytest.raises(MedflowError, match="needs --url"):
        export(name, "dicomweb")
    bare = register_location(state, LocationKind.DATASET, tmp_path / "src")  # no deid/ folder
    with pytest.raises(MedflowError, match="keep-deid"):
        export(bare, "dicomweb", url=orthanc.dicomweb)
