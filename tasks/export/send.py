"""Send Part-10 files by STOW-RS (dicomweb-client) or C-STORE (pynetdicom); counts only, never UIDs or values."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pydicom

from tasks.errors import ConfigError

log = logging.getLogger(__name__)


class Protocol(StrEnum):
    DICOMWEB = "dicomweb"
    DIMSE = "dimse"


@dataclass(frozen=True)
class Target:
    """Where to send: a DICOMweb base URL, or a DIMSE host, port and called AE title (with our calling title)."""

    protocol: Protocol
    url: str | None = None
    host: str | None = None
    port: int | None = None
    called_aet: str = "ANY-SCP"
    calling_aet: str = "MEDFLOW"

    def check(self) -> Target:
        if self.protocol is Protocol.DICOMWEB and not self.url:
            raise ConfigError("--to dicomweb needs --url (the DICOMweb base URL, e.g. http://host/dicom-web)")
        if self.protocol is Protocol.DIMSE and not (self.host and self.port):
            raise ConfigError("--to dimse needs --host and --port (and --called-aet)")
        return self


@dataclass
class SendResult:
    sent: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # reason -> count

    def fail(self, reason: str, n: int = 1) -> None:
        self.failed += n
        self.failures[reason] = self.failures.get(reason, 0) + n


def send(files: list[Path], target: Target, batch: int = 20) -> SendResult:
    """Send ``files`` to ``target``; a file that cannot be sent is counted by reason, the others still go."""
    target.check()
    return _stow(files, target, batch) if target.protocol is Protocol.DICOMWEB else _c_store(files, target)


def _stow(files: list[Path], target: Target, batch: int) -> SendResult:
    from dicomweb_client.api import DICOMwebClient
    from requests import RequestException

    client = DICOMwebClient(url=str(target.url))
    result = SendResult()
    for start in range(0, len(files), batch):
        chunk = [pydicom.dcmread(p) for p in files[start : start + batch]]
        try:
            client.store_instances(datasets=chunk)
            result.sent += len(chunk)
        except RequestException as error:  # HTTP 4xx/5xx or connection: the whole request failed
            status = getattr(getattr(error, "response", None), "status_code", None)
            result.fail(f"http-{status}" if status else "connection", len(chunk))
    log.info("STOW-RS: %d sent, %d failed", result.sent, result.failed)
    return result


def _c_store(files: list[Path], target: Target) -> SendResult:
    from pynetdicom import AE

    datasets = [pydicom.dcmread(p) for p in files]
    ae = AE(ae_title=target.calling_aet)
    for sop_class, syntax in sorted({(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in datasets}):
        ae.add_requested_context(sop_class, [syntax])
    result = SendResult()
    assoc = ae.associate(str(target.host), int(target.port or 0), ae_title=target.called_aet)
    if not assoc.is_established:
        result.fail("association-refused", len(datasets))
        return result
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code == 0x0000 or (code is not None and code in (0xB000, 0xB007, 0xB006)):  # success or warning
                result.sent += 1
            else:
                result.fail(f"status-{code:04X}" if isinstance(code, int) else "no-response")
    finally:
        assoc.release()
    log.info("C-STORE: %d sent, %d failed", result.sent, result.failed)
    return result
