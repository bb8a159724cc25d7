"""A PACS all the way into the dataset: the ``ingest-source`` flow over DICOMweb (the CT study), then DIMSE (the MR
study), on a real Orthanc and a real Prefect server; staging is emptied, state recorded, a second run fetches
nothing. Study-level filters keep the ultrasound (OCR, slow on a CPU) out of this test."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tasks.deid.keys import write_new_key
from tasks.locations import LocationKind, register_location
from tests.tasks.sources.orthanc import TEST_AET, Orthanc

pytestmark = pytest.mark.slow


def test_pacs_sources_ingest_incrementally(
    orthanc: Orthanc, prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deployments.pipelines import ingest_source

    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(tmp_path / "state"))
    key, dataset, sources = tmp_path / "deid.key", tmp_path / "dataset", tmp_path / "sources.yaml"
    write_new_key(key)
    sources.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "web",
                        "kind": "dicomweb",
                        "url": orthanc.dicomweb,
                        "filters": {"ModalitiesInStudy": "CT"},
                    },
                    {
                        "name": "dimse",
                        "kind": "dimse",
                        "host": "127.0.0.1",
                        "port": orthanc.dicom_port,
                        "called_aet": orthanc.aet,
                        "calling_aet": TEST_AET,
                        "filters": {"ModalitiesInStudy": "MR"},
                    },
                ]
            }
        )
    )
    monkeypatch.setenv("MEDFLOW_SOURCES_FILE", str(sources))  # the worker's setting, not a flow parameter
    state = tmp_path / "state"
    run = {
        "dataset": register_location(state, LocationKind.DATASET, dataset),
        "key_file": register_location(state, LocationKind.KEY, key),
        "workers": 1,
    }

    web = ingest_source(source="web", **run)
    assert (web["fetch"]["found"], web["fetch"]["fetched"]) == (1, 1)
    summary = web["ingest"]
    assert (summary["discovered"], summary["stored"], summary["new_rows"]) == (1, 1, 1)
    assert list(pd.read_parquet(dataset / "manifest.parquet").modality) == ["CT"]
    assert not list((tmp_path / "state" / "staging" / "web").iterdir())  # originals do not linger
    assert (dataset / "sources" / "web.json").exists()

    again = ingest_source(source="web", **run)
    assert again["fetch"]["fetched"] == 0 and again["fetch"]["already_ingested"] == 1
    assert again["ingest"] is None

    dimse = ingest_source(source="dimse", **run)
    assert (dimse["fetch"]["found"], dimse["fetch"]["fetched"]) == (1, 1)
    assert (dimse["ingest"]["stored"], dimse["ingest"]["new_rows"]) == (1, 1)
    assert sorted(pd.read_parquet(dataset / "manifest.parquet").modality) == ["CT", "MR"]
    assert not list((tmp_path / "state" / "staging" / "dimse").iterdir())
    assert ingest_source(source="dimse", **run)["fetch"]["fetched"] == 0
