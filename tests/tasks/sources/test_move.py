"""C-MOVE retrieval (``retrieve: move``): against a real Orthanc with medflow registered as a DICOM node, and against
archives built on pynetdicom's Q/R SCP that behave like slow enterprise archives (answer the C-MOVE before the
instances arrive, lose one, fail a sub-operation): everything asked for ends up staged, once."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.data import get_testdata_file
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelMove

from tasks.sources import RetrieveMode, RetryPolicy, SeenInstances, SourceConfig, SourceKind, fetch_new, staging_dir
from tasks.sources.move import MoveDestination, move_series
from tests.tasks.sources.instances import ct_series
from tests.tasks.sources.orthanc import TEST_FILES, Orthanc, free_port

KEY = b"k" * 32
MOVE_AET = "MEDFLOWMOVE"


@pytest.mark.slow
def test_orthanc_moves_every_new_instance_to_our_scp(orthanc: Orthanc, tmp_path: Path) -> None:
    move_port = free_port()
    orthanc.register("medflow-move", MOVE_AET, move_port)
    config = SourceConfig(
        name="pacs-move",
        kind=SourceKind.DIMSE,
        host="127.0.0.1",
        port=orthanc.dicom_port,
        called_aet=orthanc.aet,
        calling_aet=MOVE_AET,
        retrieve=RetrieveMode.MOVE,
        move_port=move_port,
        move_wait_s=5,
        retry=RetryPolicy(attempts=3, initial_wait_s=0.2, max_wait_s=1, timeout_s=10),
    )
    seen = SeenInstances.for_source(tmp_path / "dataset", config.name, KEY)
    staging = staging_dir(tmp_path / "state", config.name)

    stored = len(orthanc.call("GET", "/instances"))  # the session's Orthanc: other tests may have added studies
    assert stored >= len(TEST_FILES)
    result = fetch_new(config, staging, seen)

    assert (result.found, result.fetched) == (stored, stored)
    originals = {pydicom.dcmread(get_testdata_file(n)).SOPInstanceUID: n for n in TEST_FILES}
    compared = 0
    for path in staging.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        assert path.stem == seen.digest(ds.SOPInstanceUID)
        if ds.SOPInstanceUID in originals:
            original = pydicom.dcmread(get_testdata_file(originals[ds.SOPInstanceUID]))
            assert (ds.pixel_array == original.pixel_array).all()
            compared += 1
    assert compared == len(TEST_FILES)
    seen.commit(result.digests)
    again = fetch_new(config, staging, SeenInstances.for_source(tmp_path / "dataset", config.name, KEY))
    assert (again.skipped, again.fetched) == (stored, 0)


class Archive:
    """A Q/R archive on pynetdicom's C-MOVE SCP with scripted misbehaviour, serving ``files``.

    ``early``: the first C-MOVE is answered at once (success, no sub-operations) and the instances follow a
    moment later on the archive's own association, all but the last (lost). ``failing``: on the first C-MOVE
    one instance is sent as an SOP class the destination did not negotiate, so that sub-operation fails
    (status B000). Later C-MOVEs behave.
    """

    def __init__(self, files: list[Path], *, early: bool = False, failing: bool = False) -> None:
        self.datasets = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in files}
        self.early, self.failing = early, failing
        self.requests: list[int] = []
        self.destination_port = 0
        self.ae = AE(ae_title="ARCHIVE")
        self.ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
        self.ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        self.ae.requested_contexts = StoragePresentationContexts
        self.port = free_port()
        self.server = self.ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_MOVE, self._on_move)]
        )

    def close(self) -> None:
        self.server.shutdown()

    def _send_later(self, datasets: list[Dataset]) -> None:
        time.sleep(0.8)
        sender = AE(ae_title="ARCHIVE")
        sender.requested_contexts = StoragePresentationContexts
        assoc = sender.associate("127.0.0.1", self.destination_port, ae_title=MOVE_AET)
        for ds in datasets:
            assoc.send_c_store(ds)
        assoc.release()

    def _on_move(self, event):
        uids = event.identifier.SOPInstanceUID
        wanted = [self.datasets[u] for u in ([uids] if isinstance(uids, str) else uids)]
        self.requests.append(len(wanted))
        yield "127.0.0.1", self.destination_port
        if self.early and len(self.requests) == 1:
            threading.Thread(target=self._send_later, args=(wanted[:-1],), daemon=True).start()
            yield 0
            return
        yield len(wanted)
        for i, ds in enumerate(wanted):
            if self.failing and len(self.requests) == 1 and i == 0:
                broken = copy.deepcopy(ds)
                broken.SOPClassUID = "1.2.826.0.1.3680043.10.1234.1"  # not negotiated: this sub-operation fails
                yield 0xFF00, broken
            else:
                yield 0xFF00, ds


@pytest.fixture
def series(tmp_path: Path) -> list[Path]:
    return ct_series(tmp_path / "archive", 4)


def _config(archive: Archive, move_wait_s: float) -> SourceConfig:
    return SourceConfig(
        name="slow-pacs",
        kind=SourceKind.DIMSE,
        host="127.0.0.1",
        port=archive.port,
        called_aet="ARCHIVE",
        calling_aet=MOVE_AET,
        retrieve=RetrieveMode.MOVE,
        move_port=archive.destination_port,
        move_wait_s=move_wait_s,
        retry=RetryPolicy(attempts=3, initial_wait_s=0.1, max_wait_s=0.5, timeout_s=10),
    )


@pytest.fixture
def archive_factory(series: list[Path]) -> Iterator:
    made: list[Archive] = []

    def make(**behaviour) -> Archive:
        archive = Archive(series, **behaviour)
        archive.destination_port = free_port()
        made.append(archive)
        return archive

    yield make
    for archive in made:
        archive.close()


def _move(archive: Archive, series: list[Path], tmp_path: Path, move_wait_s: float) -> tuple[set[str], set[str]]:
    config = _config(archive, move_wait_s)
    seen = SeenInstances.for_source(tmp_path / "dataset", config.name, KEY)
    staging = staging_dir(tmp_path / "state", config.name)
    first = pydicom.dcmread(series[0])
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in series]
    with MoveDestination(config, staging, seen) as destination:
        staged = move_series(config, first.StudyInstanceUID, first.SeriesInstanceUID, uids, destination)
    assert {p.stem for p in staging.glob("*.dcm")} == staged
    return staged, {seen.digest(u) for u in uids}


def test_an_archive_answering_before_sending_is_waited_for_and_asked_again(
    archive_factory, series: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archive = archive_factory(early=True)
    staged, wanted = _move(archive, series, tmp_path, move_wait_s=2.0)
    assert staged == wanted
    assert archive.requests == [4, 1]  # everything, then only the instance that never came
    assert any("1 of 4 instances of a series missing" in r.getMessage() for r in caplog.records)


def test_failed_sub_operations_are_asked_for_again_without_waiting(
    archive_factory, series: list[Path], tmp_path: Path
) -> None:
    archive = archive_factory(failing=True)
    started = time.monotonic()
    staged, wanted = _move(archive, series, tmp_path, move_wait_s=30.0)
    assert staged == wanted
    assert archive.requests == [4, 1]
    assert time.monotonic() - started < 15  # the archive's counts said nothing was in flight: no 30 s wait


def test_instances_nobody_asked_for_are_acknowledged_not_kept(
    archive_factory, series: list[Path], tmp_path: Path
) -> None:
    archive = archive_factory()
    config = _config(archive, 1.0)
    seen = SeenInstances.for_source(tmp_path / "dataset", config.name, KEY)
    staging = staging_dir(tmp_path / "state", config.name)
    with MoveDestination(config, staging, seen) as destination:
        sender = AE(ae_title="ARCHIVE")
        sender.requested_contexts = StoragePresentationContexts
        assoc = sender.associate("127.0.0.1", destination.port, ae_title=MOVE_AET)
        assert assoc.send_c_store(pydicom.dcmread(series[0])).Status == 0x0000
        assoc.release()
        assert destination.unexpected == 1
    assert not list(staging.glob("*.dcm"))
