"""Header gaps: attributes the dictionary does not know (any group) and encapsulated documents."""

from __future__ import annotations

import re

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from tasks.deid.context import DeidContext
from tasks.deid.documents import blank_pdf
from tasks.deid.instance import deidentify_instance
from tasks.deid.options import DEFAULT_OPTIONS, DeidOption
from tasks.deid.reader import read_dicom

UNKNOWN_PATIENT, UNKNOWN_EQUIPMENT = 0x00100031, 0x00181FFE  # public tags no dictionary edition defines


def _deid(ds, key, *extra: DeidOption):
    ctx = DeidContext.create(key, options={*DEFAULT_OPTIONS, *extra}, clean_pixels="off")
    return deidentify_instance(ds, ctx)


def test_unknown_public_attributes_read_as_un_are_removed(tmp_path, key):
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.add_new(UNKNOWN_PATIENT, "LO", "DOE^JOHN MRN 8827361")
    ds.add_new(UNKNOWN_EQUIPMENT, "LO", "Room of Dr Quillmore")
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    path = tmp_path / "implicit.dcm"
    ds.save_as(path, enforce_file_format=True)
    read = read_dicom(path, max_pixel_bytes=1 << 30)
    assert read[UNKNOWN_PATIENT].VR == "UN"  # implicit VR and not in the dictionary: read as UN
    out = _deid(read, key).dataset
    assert UNKNOWN_PATIENT not in out and UNKNOWN_EQUIPMENT not in out
    kept = _deid(read_dicom(path, max_pixel_bytes=1 << 30), key, DeidOption.RETAIN_UNKNOWN_ATTRIBUTES).dataset
    assert UNKNOWN_PATIENT in kept and UNKNOWN_EQUIPMENT in kept
    assert "MEDFLOW RETAIN UNKNOWN ATTRIBUTES" in kept.DeidentificationMethod


def encapsulated_pdf() -> Dataset:
    """An Encapsulated PDF of the CT_small patient with a report that names them."""
    ct = dcmread(get_testdata_file("CT_small.dcm"))
    ds = Dataset()
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                    "StudyTime", "StudyID", "ReferringPhysicianName", "AccessionNumber", "Manufacturer"):  # fmt: skip
        setattr(ds, keyword, ct.get(keyword, ""))
    ds.PatientName, ds.PatientID = "ZYQVARN^OBLESTINE", "MRN8827361"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    ds.SOPInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "DOC", "1", "1"
    ds.ContentDate, ds.ContentTime, ds.AcquisitionDateTime = "20200301", "101500", "20200301101500"
    ds.ConversionType = "SD"
    ds.BurnedInAnnotation = "YES"
    ds.RecognizableVisualFeatures = "YES"
    ds.DocumentTitle = "Discharge letter for Oblestine Zyqvarn"
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    report = b"%PDF-1.4\n% Patient ZYQVARN OBLESTINE MRN8827361\n%%EOF\n"
    ds.EncapsulatedDocument = report
    ds.EncapsulatedDocumentLength = len(report)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    return ds


def test_encapsulated_pdf_becomes_a_consistent_blank_document(key):
    out = _deid(encapsulated_pdf(), key).dataset
    document = out.EncapsulatedDocument
    assert out.EncapsulatedDocumentLength == len(blank_pdf()) == len(document.rstrip(b"\x00"))
    assert document.startswith(b"%PDF-1.4") and b"ZYQVARN" not in document and b"8827361" not in document
    assert out.BurnedInAnnotation == "NO" and out.RecognizableVisualFeatures == "NO"
    assert "DocumentTitle" in out and out.DocumentTitle == ""  # Type 2: present, empty
    cleaned = _deid(encapsulated_pdf(), key, DeidOption.CLEAN_DESCRIPTORS).dataset
    assert cleaned.DocumentTitle == ""  # nothing of the title is a known word but "for": emptied


def test_blank_pdf_cross_references_point_at_its_objects():
    pdf = blank_pdf()
    xref = int(re.search(rb"startxref\n(\d+)", pdf).group(1))
    assert pdf[xref:].startswith(b"xref\n")
    offsets = [int(m) for m in re.findall(rb"(\d{10}) 00000 n", pdf)]
    assert [pdf[o : o + 7] for o in offsets] == [b"%d 0 obj" % n for n in (1, 2, 3)]
    assert pdf.rstrip().endswith(b"%%EOF")
