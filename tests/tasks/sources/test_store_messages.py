"""C-STORE messages read and written without pynetdicom's objects: checked against pynetdicom and pydicom."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import UID
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ, C_STORE_RSP, DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.dsutils import create_file_meta, encode, encode_file_meta
from pynetdicom.pdu import P_DATA_TF

from tasks.sources.store_messages import StoreCommand, part10_header, read_command, store_response_pdu

CT = "1.2.840.10008.5.1.4.1.1.2"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
UIDS = ["1.2.3.4.5", "1.2.826.0.1.3680043.8.498.12345678901234567890123456789012345678", "1.2.3.44"]


def _command(message: DIMSEMessage) -> bytes:
    return encode(message.command_set, True, True)


@pytest.mark.parametrize("uid", UIDS)
@pytest.mark.parametrize("message_id", [1, 7, 65535])
def test_a_store_request_reads_as_pydicom_reads_it(uid: str, message_id: int) -> None:
    primitive = C_STORE()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = CT
    primitive.AffectedSOPInstanceUID = uid
    primitive.Priority = 2
    primitive.MoveOriginatorApplicationEntityTitle = "PACS"
    primitive.MoveOriginatorMessageID = 3
    primitive.DataSet = io.BytesIO(b"\x08\x00\x16\x00")
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    command = _command(message)
    read = read_command(command)
    assert read == StoreCommand(0x0001, message_id, int(message.command_set.CommandDataSetType), CT, uid)
    assert read is not None and read.is_store_with_data_set
    assert read_command(command[:-3]) is None  # cut short
    assert read_command(b"\x02\x00" + command[2:]) is None  # not group 0000


def test_commands_without_an_instance_are_not_store_requests() -> None:
    primitive = C_ECHO()
    primitive.MessageID = 1
    primitive.AffectedSOPClassUID = "1.2.840.10008.1.1"
    message = C_ECHO_RQ()
    message.primitive_to_message(primitive)
    assert read_command(_command(message)) is None


@pytest.mark.parametrize("uid", UIDS)
@pytest.mark.parametrize("status", [0x0000, 0xA700, 0xC000])
def test_the_response_is_the_pdu_pynetdicom_sends(uid: str, status: int) -> None:
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = 9
    primitive.AffectedSOPClassUID = US_MULTIFRAME
    primitive.AffectedSOPInstanceUID = uid
    primitive.Status = status
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    (p_data,) = message.encode_msg(3, 16384)
    pdu = P_DATA_TF()
    pdu.from_primitive(p_data)
    ours = store_response_pdu(3, 9, US_MULTIFRAME, uid, status)
    assert ours == pdu.encode()

    decoded = P_DATA_TF()
    decoded.decode(ours)
    received = DIMSEMessage()
    assert received.decode_msg(decoded.to_primitive())
    answer = received.message_to_primitive()
    assert (answer.MessageIDBeingRespondedTo, answer.Status, answer.AffectedSOPInstanceUID) == (9, status, uid)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50"])
@pytest.mark.parametrize("uid", UIDS)
def test_the_part10_header_is_the_one_pynetdicom_writes_and_pydicom_reads(syntax: str, uid: str) -> None:
    meta = create_file_meta(sop_class_uid=UID(CT), sop_instance_uid=UID(uid), transfer_syntax=UID(syntax))
    header = part10_header(CT, uid, syntax)
    assert header == b"\x00" * 128 + b"DICM" + encode_file_meta(meta)

    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CT, uid, "CT"
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, syntax == "1.2.840.10008.1.2"
    write_dataset(body, ds)
    read = pydicom.dcmread(io.BytesIO(header + body.getvalue()))
    assert (read.file_meta.TransferSyntaxUID, read.file_meta.MediaStorageSOPInstanceUID) == (syntax, uid)
    assert read.SOPInstanceUID == uid and read.Modality == "CT"
