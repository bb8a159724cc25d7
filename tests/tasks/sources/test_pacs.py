"""End to end against a real Orthanc: DICOMweb and DIMSE fetch, incremental second run, retries on a closed port."""

from __future__ import annotations

import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tasks.sources import (
    RetryPolicy,
    SeenInstances,
    SourceConfig,
    SourceKind,
    SourceUnavailable,
    fetch_new,
    staging_dir,
)
from tests.tasks.sources.orthanc import TEST_AET, TEST_FILES, Orthanc, free_port

KEY = b"k" * 32
FAST_RETRY = RetryPolicy(attempts=3, initial_wait_s=0.2, max_wait_s=1.0, timeout_s=5)


def _source(kind: SourceKind, orthanc: Orthanc) -> SourceConfig:
    if kind is SourceKind.DICOMWEB:
        return SourceConfig(name="pacs-web", kind=kind, url=orthanc.dicomweb, retry=FAST_RETRY)
    return SourceConfig(
        name="pacs-dimse",
        kind=kind,
        host="127.0.0.1",
        port=orthanc.dicom_port,
        called_aet=orthanc.aet,
        calling_aet=TEST_AET,
        retry=FAST_RETRY,
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", [SourceKind.DICOMWEB, SourceKind.DIMSE])
def test_fetch_is_complete_then_incremental(kind: SourceKind, orthanc: Orthanc, tmp_path: Path) -> None:
    config = _source(kind, orthanc)
    dataset = tmp_path / "dataset"
    staging = staging_dir(tmp_path / "state", config.name)
    expected = {pydicom.dcmread(get_testdata_file(n)).SOPInstanceUID: n for n in TEST_FILES}

    seen = SeenInstances.for_source(dataset, config.name, KEY)
    first = fetch_new(config, staging, seen)

    assert (first.found, first.skipped, first.fetched) == (len(TEST_FILES), 0, len(TEST_FILES))
    staged = sorted(staging.glob("*.dcm"))
    assert {p.stem for p in staged} == set(first.digests)
    for path in staged:  # every staged file is a complete, readable copy of an uploaded original
        ds = pydicom.dcmread(path)
        original = pydicom.dcmread(get_testdata_file(expected[ds.SOPInstanceUID]))
        assert path.stem == seen.digest(ds.SOPInstanceUID)
        assert ds.PatientName == original.PatientName
        assert ds.pixel_array.shape == original.pixel_array.shape
        assert (ds.pixel_array == original.pixel_array).all()
    for uid in expected:  # neither UIDs nor names reach file names or the state file
        assert all(uid not in p.name for p in staged)

    seen.commit(first.digests)
    state_text = seen.path.read_text()
    assert all(uid not in state_text for uid in expected)

    again = fetch_new(config, staging, SeenInstances.for_source(dataset, config.name, KEY))
    assert (again.found, again.skipped, again.fetched) == (len(TEST_FILES), len(TEST_FILES), 0)


@pytest.mark.slow
def test_only_new_instances_are_fetched(orthanc: Orthanc, tmp_path: Path) -> None:
    config = _source(SourceKind.DIMSE, orthanc)
    seen = SeenInstances.for_source(tmp_path / "dataset", config.name, KEY)
    ct_uid = pydicom.dcmread(get_testdata_file("CT_small.dcm")).SOPInstanceUID
    seen.commit([seen.digest(ct_uid)])

    result = fetch_new(config, staging_dir(tmp_path / "state", config.name), seen)

    assert (result.skipped, result.fetched) == (1, len(TEST_FILES) - 1)
    assert seen.digest(ct_uid) not in result.digests


@pytest.mark.parametrize("kind", [SourceKind.DICOMWEB, SourceKind.DIMSE])
def test_closed_port_is_retried_with_backoff_then_reported(
    kind: SourceKind, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens here: every connection is refused
    policy = RetryPolicy(attempts=3, initial_wait_s=0.3, max_wait_s=5, timeout_s=2)
    if kind is SourceKind.DICOMWEB:
        config = SourceConfig(name="down", kind=kind, url=f"http://127.0.0.1:{port}/dicom-web", retry=policy)
    else:
        config = SourceConfig(name="down", kind=kind, host="127.0.0.1", port=port, retry=policy)
    seen = SeenInstances.for_source(tmp_path, "down", KEY)

    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="after 3 attempts") as info:
        fetch_new(config, staging_dir(tmp_path, "down"), seen)
    elapsed = time.monotonic() - started

    assert elapsed >= 0.3 + 0.6  # two backoff waits: 0.3 s then 0.6 s
    assert elapsed < 10
    assert str(port) not in str(info.value)  # no URL (which may carry UIDs) in the message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    retries = [r.getMessage() for r in caplog.records if r.name == "tasks.sources.retry"]
    assert len(retries) == 2 and all("retrying" in m for m in retries)
    assert not [r for r in caplog.records if str(port) in r.getMessage()]


@pytest.mark.slow
@pytest.mark.parametrize("kind", [SourceKind.DICOMWEB, SourceKind.DIMSE])
def test_study_filters_select_what_is_fetched(kind: SourceKind, orthanc: Orthanc, tmp_path: Path) -> None:
    # Orthanc ignores the QIDO-RS offset with ModalitiesInStudy: paging must still end.
    config = _source(kind, orthanc).model_copy(update={"filters": {"ModalitiesInStudy": "US"}})
    seen = SeenInstances.for_source(tmp_path / "dataset", config.name, KEY)
    result = fetch_new(config, staging_dir(tmp_path / "state", config.name), seen)
    assert (result.found, result.fetched) == (1, 1)
    (staged,) = result.staging.glob("*.dcm")
    assert pydicom.dcmread(staged).Modality == "US"
