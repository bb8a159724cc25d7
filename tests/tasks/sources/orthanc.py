"""A real Orthanc PACS (Debian packages ``orthanc`` + ``orthanc-dicomweb``) on loopback, with free ports."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
TEST_AET = "MEDFLOWTEST"
# Real files from pydicom's test data: two studies, CT/MR uncompressed and a JPEG 2000 ultrasound.
TEST_FILES = ("CT_small.dcm", "MR_small.dcm", "US1_J2KR.dcm")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Orthanc:
    """Addresses of the running test PACS."""

    http_port: int
    dicom_port: int
    aet: str = "ORTHANC"

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.rest}/dicom-web"

    def upload(self, path: Path) -> str:
        """POST one Part-10 file to the REST API (/instances); return Orthanc's id of its study."""
        answer = self.call("POST", "/instances", path.read_bytes())
        assert answer["Status"] in ("Success", "AlreadyStored")
        return answer["ParentStudy"]

    def call(self, method: str, path: str, body: bytes | dict | list | None = None, timeout_s: float = 60) -> dict:
        """One REST call (JSON bodies are encoded); the decoded JSON answer."""
        data = json.dumps(body).encode() if isinstance(body, dict | list) else body
        request = urllib.request.Request(f"{self.rest}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            text = response.read()
        return json.loads(text) if text.strip() else {}

    def register(self, name: str, aet: str, port: int) -> None:
        """Declare a DICOM node (PUT /modalities/<name>): Orthanc then stores to it and moves to it."""
        self.call("PUT", f"/modalities/{name}", {"AET": aet, "Host": "127.0.0.1", "Port": port})


def _wait_ready(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/system", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"Orthanc did not answer within {timeout_s} s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """Start Orthanc with the DICOMweb plugin, upload the test files, stop it at the end of the session."""
    if not Path(ORTHANC).exists() or not DICOMWEB_PLUGIN.exists():
        pytest.fail("Orthanc is not installed: run .ci/system-deps (Debian packages orthanc, orthanc-dicomweb)")
    root = tmp_path_factory.mktemp("orthanc")
    server = Orthanc(http_port=free_port(), dicom_port=free_port())
    config = {
        "Name": "medflow-test",
        "HttpPort": server.http_port,
        "HttpBindAddress": "127.0.0.1",
        "DicomPort": server.dicom_port,
        "DicomAet": server.aet,
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {"medflow": [TEST_AET, "127.0.0.1", free_port()]},
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (root / "orthanc.json").write_text(json.dumps(config, indent=2))
    log = root / "orthanc.log"
    with log.open("wb") as out:
        process = subprocess.Popen([ORTHANC, str(root / "orthanc.json")], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(server.rest, process, log)
        for name in TEST_FILES:
            server.upload(Path(get_testdata_file(name)))
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
