"""The Orthanc settings of ``docker/compose.yaml``, run for real: a local Orthanc (Debian package) started with
exactly those ``ORTHANC__*`` settings (worker-cpu's address replaced by 127.0.0.1, ports made free) accepts medflow's
AE title from medflow's address only, for the commands the file allows it, and nothing from anyone else."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, PatientRootQueryRetrieveInformationModelFind, Verification

from tests.docker.test_docker import DOCKER, orthanc_settings
from tests.tasks.sources.orthanc import ORTHANC, _wait_ready, free_port

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Pacs:
    port: int
    rest: str
    aet: str
    peer_aet: str


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    if not Path(ORTHANC).exists():
        pytest.fail("Orthanc is not installed: run .ci/system-deps (Debian package orthanc)")
    root = tmp_path_factory.mktemp("orthanc-policy")
    settings = orthanc_settings(yaml.safe_load((DOCKER / "compose.yaml").read_text()))
    (name, peer), *_ = settings["DicomModalities"].items()
    port, http = free_port(), free_port()
    settings.update(
        DicomModalities={name: {**peer, "Host": "127.0.0.1", "Port": free_port()}},
        DicomPort=port,
        HttpPort=http,
        HttpBindAddress="127.0.0.1",
        StorageDirectory=str(root / "storage"),
        IndexDirectory=str(root / "index"),
        RemoteAccessAllowed=False,  # the REST API is the test's own view, on loopback, without a password
        AuthenticationEnabled=False,
    )
    (root / "orthanc.json").write_text(json.dumps(settings, indent=2))
    log = root / "orthanc.log"
    with log.open("wb") as out:
        process = subprocess.Popen([ORTHANC, str(root / "orthanc.json")], stdout=out, stderr=subprocess.STDOUT)
    try:
        rest = f"http://127.0.0.1:{http}"
        _wait_ready(rest, process, log)
        yield Pacs(port=port, rest=rest, aet=settings["DicomAet"], peer_aet=peer["AET"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _echo(pacs: Pacs, calling: str, called: str, source_ip: str = "127.0.0.1") -> bool:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", pacs.port, ae_title=called, bind_address=(source_ip, 0))
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0x0000


def test_only_the_known_peer_at_its_address_is_answered(pacs: Pacs) -> None:
    assert _echo(pacs, pacs.peer_aet, pacs.aet)  # medflow, from its address: yes
    assert not _echo(pacs, "INTRUDER", pacs.aet)  # an unknown AE title
    assert not _echo(pacs, pacs.peer_aet, "SOMEONE")  # a wrong called AE title
    assert not _echo(pacs, pacs.peer_aet, pacs.aet, source_ip="127.0.0.2")  # medflow's title from another host


def test_the_peer_may_query_but_not_store(pacs: Pacs) -> None:
    ae = AE(ae_title=pacs.peer_aet)
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", pacs.port, ae_title=pacs.aet)
    stored = False
    if assoc.is_established:
        query = dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
        query.QueryRetrieveLevel = "PATIENT"
        answers = list(assoc.send_c_find(query, PatientRootQueryRetrieveInformationModelFind))
        assert answers and answers[-1][0].Status == 0x0000  # C-FIND allowed
        status = assoc.send_c_store(dcmread(get_testdata_file("CT_small.dcm")))
        stored = bool(status) and status.Status == 0x0000
        if assoc.is_established:
            assoc.release()
    assert not stored
    with urllib.request.urlopen(f"{pacs.rest}/instances", timeout=10) as response:
        assert json.load(response) == []  # nothing reached the PACS
