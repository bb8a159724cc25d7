"""The listener with real DICOM peers: pynetdicom associations (plain and TLS), dcmtk's storescu and STOW-RS
over HTTP. Access control, limits, routing, durable keyed staging, one report per quiet study, and no PHI in
any log line."""

from __future__ import annotations

import datetime
import io
import logging
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, Verification

from tasks.atomic import TEMP_PREFIX
from tasks.sources import SourceConfig, SourceKind, TlsConfig
from tasks.sources.inbox import JOURNAL_NAME, study_token
from tasks.sources.listener import Listener
from tasks.sources.receiver import Outcome
from tasks.sources.scp import DUL_LOOP_DELAY_S
from tasks.sources.seen import instance_digest
from tests.tasks.sources.instances import ct_series, new_study, phi_values
from tests.tasks.sources.orthanc import free_port

KEY = b"k" * 32


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., tuple[Listener, list]]]:
    """Start a listener with the given settings; yields (listener, reported studies)."""
    running: list[Listener] = []

    def _start(**settings) -> tuple[Listener, list]:
        reports: list = []
        settings = {"name": "push", "quiet_seconds": 0.5, "journal_mb": 8, **settings}
        config = SourceConfig(kind=SourceKind.LISTENER, port=free_port(), **settings)
        listener = Listener(config, KEY, tmp_path / "state", reports.append).start()
        running.append(listener)
        return listener, reports

    yield _start
    for listener in running:
        listener.stop()


def _wait(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _associate(port: int, *, calling: str = "ORTHANC", tls: ssl.SSLContext | None = None):
    ae = AE(ae_title=calling)
    for sop_class in (CTImageStorage, MRImageStorage, Verification):
        ae.add_requested_context(sop_class)
    ae.acse_timeout = ae.network_timeout = 10
    return ae.associate("127.0.0.1", port, ae_title="MEDFLOW", tls_args=(tls, "127.0.0.1") if tls else None)


def test_received_studies_are_staged_durably_and_reported_once_each(
    start, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    listener, reports = start()
    ct = ct_series(tmp_path / "in", 3)
    mr = new_study("MR_small.dcm", tmp_path / "in", "ROE^RICHARD")

    assoc = _associate(listener.dimse_port)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    statuses = [assoc.send_c_store(pydicom.dcmread(p)).Status for p in [*ct, mr]]
    assoc.release()

    assert statuses == [0x0000] * 4
    _wait(lambda: len(reports) == 2)
    by_token = {r.token: r for r in reports}
    ct_uid, mr_uid = (pydicom.dcmread(p).StudyInstanceUID for p in (ct[0], mr))
    ct_report = by_token[study_token(KEY, ct_uid)]
    assert (ct_report.instances, ct_report.modalities) == (3, {"CT": 3})
    assert by_token[study_token(KEY, mr_uid)].modalities == {"MR": 1}
    for path in [*ct, mr]:  # each a complete, readable copy under its keyed name
        original = pydicom.dcmread(path)
        staged = listener.inbox.study_dir(study_token(KEY, original.StudyInstanceUID))
        copy = pydicom.dcmread(staged / f"{instance_digest(KEY, original.SOPInstanceUID)}.dcm")
        assert copy.SOPInstanceUID == original.SOPInstanceUID and (copy.pixel_array == original.pixel_array).all()

    late = new_study("CT_small.dcm", tmp_path / "late", "DOE^JANE")
    late_ds = pydicom.dcmread(late)
    late_ds.StudyInstanceUID = ct_uid  # a late instance of the reported CT study: a new, small round
    assoc = _associate(listener.dimse_port)
    assert assoc.send_c_store(late_ds).Status == 0x0000
    assoc.release()
    _wait(lambda: len(reports) == 3)
    assert (reports[2].token, reports[2].instances) == (study_token(KEY, ct_uid), 1)

    names = "".join(str(p) for p in listener.inbox.root.rglob("*"))
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for value in phi_values([*ct, mr]):
        assert value not in names and value not in logs


def test_storescu_sends_a_folder(start, tmp_path: Path) -> None:
    listener, reports = start()
    paths = ct_series(tmp_path / "in", 4)
    result = subprocess.run(
        ["storescu", "-aec", "MEDFLOW", "+sd", "127.0.0.1", str(listener.dimse_port), str(tmp_path / "in")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    _wait(lambda: len(reports) == 1)
    assert reports[0].instances == len(paths) and listener.receiver.counts[Outcome.STORED] == len(paths)


def _dataset_bytes(path: Path) -> tuple[bytes, str]:
    """The encoded dataset behind a file's meta information, and its transfer syntax."""
    with path.open("rb") as fh:
        read_preamble(fh, False)
        meta = _read_file_meta_info(fh)
        return fh.read(), str(meta.TransferSyntaxUID)


def test_staged_files_hold_the_dataset_as_sent_and_the_reactor_polls_fast(start, tmp_path: Path) -> None:
    """Data sets in one PDU (pynetdicom's path) and spread over many (spooled to disk as they arrive)."""
    listener, _ = start()
    paths = ct_series(tmp_path / "in", 3)
    assoc = _associate(listener.dimse_port)
    try:
        assert assoc.is_established
        (served,) = listener.scp.ae.active_associations
        assert served.dul._run_loop_delay == DUL_LOOP_DELAY_S
        for path in paths:
            assert assoc.send_c_store(pydicom.dcmread(path)).Status == 0x0000
    finally:
        assoc.release()
    assert listener.inbox.flush()  # acknowledged once journaled: staged files follow
    staged = sorted(listener.inbox.root.rglob("*.dcm"))
    assert len(staged) == len(paths)
    sent = {pydicom.dcmread(p).SOPInstanceUID: p for p in paths}
    for path in staged:
        ds = pydicom.dcmread(path)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert _dataset_bytes(path) == _dataset_bytes(sent[ds.SOPInstanceUID])  # byte for byte, same syntax

    many = ct_series(tmp_path / "many", 3)  # 39 kB each: one PDU of storescu's, or ten of 4 kB
    sender = ["storescu", "-aec", "MEDFLOW", "127.0.0.1", str(listener.dimse_port), *map(str, many)]
    stored: list[dict[Path, bytes]] = []
    for options in ([], ["--max-send-pdu", "4096"]):
        result = subprocess.run([*sender[:3], *options, *sender[3:]], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]
        assert listener.inbox.flush()
        stored.append({p: p.read_bytes() for p in set(listener.inbox.root.rglob("*.dcm")) - set(staged)})
    assert listener.scp.spooled == len(many)  # the second round only
    assert listener.scp.answered == len(paths) + 2 * len(many)  # every request answered below pynetdicom
    assert len(stored[1]) == len(many) and stored[1] == stored[0]  # the same files, byte for byte
    assert not [p for p in listener.inbox.root.rglob("*") if p.is_file() and p.name.startswith(TEMP_PREFIX)]


def _raw_request(context_id: int, message_id: int, path: Path) -> tuple[bytes, bytes]:
    """A C-STORE request for ``path`` as its command and data set bytes (the file's syntax: explicit LE)."""
    ds = pydicom.dcmread(path)
    primitive = C_STORE()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = ds.SOPClassUID
    primitive.AffectedSOPInstanceUID = ds.SOPInstanceUID
    primitive.Priority = 0
    primitive.DataSet = io.BytesIO(b"\x00")
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    return encode(message.command_set, True, True), _dataset_bytes(path)[0]


def _p_data(*items: tuple[int, int, bytes]) -> bytes:
    body = b"".join(struct.pack(">LBB", len(data) + 2, cx, control) + data for cx, control, data in items)
    return struct.pack(">BBL", 0x04, 0, len(body)) + body


def test_a_data_set_cut_short_by_the_next_request_is_refused_and_the_next_stored(start, tmp_path: Path) -> None:
    """Answered below pynetdicom: request 1 sends half its data set, request 2 a whole one (raw PDUs)."""
    listener, _ = start()
    first, second = ct_series(tmp_path / "in", 2)
    assoc = _associate(listener.dimse_port)
    try:
        (cx,) = [c for c in assoc.accepted_contexts if c.abstract_syntax == CTImageStorage]
        assert cx.transfer_syntax[0] == ExplicitVRLittleEndian
        command_1, data_1 = _raw_request(cx.context_id, 1, first)
        command_2, data_2 = _raw_request(cx.context_id, 2, second)
        assoc._reactor_checkpoint.clear()  # as pynetdicom's own send_c_store: its reactor leaves the responses
        while not assoc._is_paused:
            time.sleep(0.001)
        raw = _p_data((cx.context_id, 0x03, command_1)) + _p_data((cx.context_id, 0x00, data_1[:9000]))
        raw += _p_data((cx.context_id, 0x03, command_2), (cx.context_id, 0x02, data_2))
        assoc.dul.socket.send(raw)
        answers = [assoc.dimse.get_msg(block=True)[1] for _ in range(2)]
        assoc._reactor_checkpoint.set()
        assert [(a.MessageIDBeingRespondedTo, a.Status) for a in answers] == [(1, 0xA700), (2, 0x0000)]
        assert assoc.send_c_echo().Status == 0x0000  # pynetdicom still serves the association
    finally:
        assoc.release()
    assert listener.inbox.flush()
    (staged,) = listener.inbox.root.rglob("*.dcm")
    assert pydicom.dcmread(staged).SOPInstanceUID == pydicom.dcmread(second).SOPInstanceUID
    assert not [p for p in listener.inbox.root.rglob("*") if p.is_file() and p.name.startswith(TEMP_PREFIX)]


_BUSY_SENDER = """
import sys, time
import pydicom
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage
port, path, busy_s = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
ae = AE(ae_title="ORTHANC")
ae.add_requested_context(CTImageStorage)
assoc = ae.associate("127.0.0.1", port, ae_title="MEDFLOW")
ds = pydicom.dcmread(path)
statuses, deadline = [], time.monotonic() + busy_s
while time.monotonic() < deadline:
    ds.SOPInstanceUID = generate_uid()
    statuses.append(assoc.send_c_store(ds).Status)
time.sleep(0.3)
ds.SOPInstanceUID = generate_uid()
last = assoc.send_c_store(ds) if assoc.is_established else None
print(len(statuses), set(statuses), None if last is None else last.Status)
assoc.release()
"""


def test_a_sender_with_nagle_on_is_not_held_and_a_long_busy_association_stays_up(start, tmp_path: Path) -> None:
    """pynetdicom (like Debian's dcmtk, so Orthanc) sends with Nagle's algorithm on: each data set PDU waits for
    the ACK of its command PDU, which a delayed ACK holds ~40 ms (35 instances in 1.8 s before TCP_QUICKACK).
    Requests answered below pynetdicom also count as traffic for its idle timer, so a pause after a push longer
    than the network timeout does not abort the association. The sender runs in its own process (in this one,
    the GIL would put pauses between its requests)."""
    listener, _ = start()
    listener.scp.ae.network_timeout = 1.0
    (path,) = ct_series(tmp_path / "in", 1)
    result = subprocess.run(
        [sys.executable, "-c", _BUSY_SENDER, str(listener.dimse_port), str(path), "1.8"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sent, statuses, last = result.stdout.split(" ", 1)[0], *result.stdout.strip().split(" ", 1)[1].rsplit(" ", 1)
    assert int(sent) > 100 and statuses == "{0}" and last == "0", result.stdout + "|" + result.stderr[-500:]


def test_unlisted_ae_titles_and_hosts_are_refused_without_naming_them(start, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    listener, _ = start(allow_ae=["ORTHANC"])
    refused = _associate(listener.dimse_port, calling="INTRUDER")
    assert refused.is_rejected and not refused.is_established
    allowed = _associate(listener.dimse_port, calling="ORTHANC")
    assert allowed.is_established
    allowed.release()
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("tasks.sources")]
    assert any("refused (calling AE title not allowed)" in m for m in messages)
    assert not any("INTRUDER" in r.getMessage() for r in caplog.records)

    walled, _ = start(name="walled", allow_hosts=["10.0.0.0/8"])  # a staging area has one running listener
    closed = _associate(walled.dimse_port)
    assert not closed.is_established
    assert any("refused (host not allowed)" in r.getMessage() for r in caplog.records)


def test_a_full_staging_area_refuses_with_out_of_resources(start, tmp_path: Path) -> None:
    listener, reports = start(max_staged_bytes=1000)
    assoc = _associate(listener.dimse_port)
    status = assoc.send_c_store(pydicom.dcmread(new_study("CT_small.dcm", tmp_path, "DOE^JANE")))
    assoc.release()
    assert status.Status == 0xA700  # Refused: out of resources; the sender keeps the instance
    assert listener.inbox.flush()
    assert not any(listener.inbox.root.rglob("*.dcm")) and listener.receiver.counts[Outcome.FULL] == 1
    time.sleep(1.0)
    assert reports == []


def test_associations_beyond_the_limit_are_refused(start) -> None:
    listener, _ = start(max_associations=1)
    first = _associate(listener.dimse_port)
    assert first.is_established
    second = _associate(listener.dimse_port)
    assert second.is_rejected
    first.release()
    third = _associate(listener.dimse_port)
    assert third.is_established
    third.release()


def test_only_routed_modalities_are_staged(start, tmp_path: Path) -> None:
    listener, reports = start(modalities=["CT"])
    assoc = _associate(listener.dimse_port)
    ct = assoc.send_c_store(pydicom.dcmread(new_study("CT_small.dcm", tmp_path, "DOE^JANE")))
    mr = assoc.send_c_store(pydicom.dcmread(new_study("MR_small.dcm", tmp_path, "DOE^JANE")))
    assoc.release()
    assert (ct.Status, mr.Status) == (0x0000, 0x0000)  # both acknowledged
    _wait(lambda: len(reports) == 1)
    assert reports[0].modalities == {"CT": 1} and listener.receiver.counts[Outcome.NOT_ROUTED] == 1
    assert len(list(listener.inbox.root.rglob("*.dcm"))) == 1


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (cryptography), as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_with_client_certificates(start, tmp_path: Path) -> None:
    server_cert, server_key = _self_signed(tmp_path, "listener")
    client_cert, client_key = _self_signed(tmp_path, "modality")
    tls = TlsConfig(cert_file=server_cert, key_file=server_key, ca_file=client_cert)
    listener, reports = start(tls=tls, stow_port=free_port())
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(server_cert))
    client.load_cert_chain(str(client_cert), str(client_key))

    assoc = _associate(listener.dimse_port, tls=client)
    assert assoc.is_established
    assert assoc.send_c_store(pydicom.dcmread(get_testdata_file("CT_small.dcm"))).Status == 0x0000
    assoc.release()
    _wait(lambda: len(reports) == 1)

    plain = _associate(listener.dimse_port)  # no TLS: the handshake fails, nothing is accepted
    assert not plain.is_established
    anonymous = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(server_cert))
    assert not _associate(listener.dimse_port, tls=anonymous).is_established  # no client certificate

    body, content_type = _multipart([Path(get_testdata_file("MR_small.dcm")).read_bytes()])
    url = f"https://127.0.0.1:{listener.stow_port}/studies"
    stored = httpx.post(url, content=body, headers={"Content-Type": content_type}, verify=client, timeout=30)
    assert stored.status_code == 200
    with pytest.raises(httpx.TransportError):  # STOW-RS over TLS too, and only with a client certificate
        httpx.post(url, content=body, headers={"Content-Type": content_type}, verify=anonymous, timeout=30)


def _multipart(parts: list[bytes], boundary: str = "medflow-boundary") -> tuple[bytes, str]:
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n" for part in parts
    )
    return body + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


def test_stow_rs_stores_instances_and_answers_per_instance(start, tmp_path: Path) -> None:
    listener, reports = start(stow_port=free_port())
    ct = ct_series(tmp_path / "in", 2)
    url = f"http://127.0.0.1:{listener.stow_port}/studies"
    body, content_type = _multipart([p.read_bytes() for p in ct])

    response = httpx.post(url, content=body, headers={"Content-Type": content_type}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/dicom+json")
    stored = response.json()["00081199"]["Value"]
    uids = sorted(pydicom.dcmread(p).SOPInstanceUID for p in ct)
    assert sorted(item["00081155"]["Value"][0] for item in stored) == uids
    _wait(lambda: len(reports) == 1)
    assert reports[0].instances == 2

    other = f"{url}/1.2.3.4.5"  # the target study differs from the instances' study: refused per instance
    wrong = httpx.post(other, content=body, headers={"Content-Type": content_type}, timeout=30)
    assert wrong.status_code == 409 and len(wrong.json()["00081198"]["Value"]) == 2
    assert wrong.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]
    mixed, mixed_type = _multipart([ct[0].read_bytes(), b"not dicom at all"])
    partial = httpx.post(url, content=mixed, headers={"Content-Type": mixed_type}, timeout=30)
    assert partial.status_code == 202
    assert httpx.post(url, json={"a": 1}, timeout=30).status_code == 415
    empty, empty_type = _multipart([])
    assert httpx.post(url, content=empty, headers={"Content-Type": empty_type}, timeout=30).status_code == 400
    assert not [p for p in listener.inbox.root.rglob("*") if p.name.startswith(".medflow-tmp")]


def test_stow_rs_refuses_hosts_off_the_list(start) -> None:
    listener, _ = start(stow_port=free_port(), allow_hosts=["10.0.0.0/8"])
    body, content_type = _multipart([Path(get_testdata_file("CT_small.dcm")).read_bytes()])
    response = httpx.post(
        f"http://127.0.0.1:{listener.stow_port}/studies", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 403
    assert not any(listener.inbox.root.rglob("*.dcm"))


def test_a_restart_reports_what_was_staged_before(start, tmp_path: Path) -> None:
    listener, reports = start(quiet_seconds=30)
    assoc = _associate(listener.dimse_port)
    assert assoc.send_c_store(pydicom.dcmread(new_study("CT_small.dcm", tmp_path, "DOE^JANE"))).Status == 0
    assoc.release()
    listener.stop()  # before the study went quiet: nothing reported yet
    assert reports == []
    partial = next(listener.inbox.root.glob("*/")) / ".medflow-tmp-interrupted"
    partial.write_bytes(b"half an instance")  # as a crash mid-write leaves it

    _, reports_after = start(quiet_seconds=0.5)
    assert not partial.exists()
    _wait(lambda: len(reports_after) == 1)
    assert (reports_after[0].instances, reports_after[0].modalities) == (1, {"CT": 1})
    threading.Event().wait(0.6)
    assert len(reports_after) == 1


def test_stow_rs_refuses_a_body_larger_than_the_staging_limit(start) -> None:
    listener, _ = start(stow_port=free_port(), max_staged_bytes=10_000)
    body, content_type = _multipart([Path(get_testdata_file("CT_small.dcm")).read_bytes()])  # 39 kB
    response = httpx.post(
        f"http://127.0.0.1:{listener.stow_port}/studies", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 413
    assert not [p for p in listener.inbox.root.rglob("*") if p.is_file() and p.name != JOURNAL_NAME]
