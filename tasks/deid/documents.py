"""Encapsulated documents (PDF, CDA, STL, OBJ, MTL): Annex E's ``D`` on (0042,0011) gives a blank document.

The document itself can hold anything (a scanned letter, a report naming the patient), so it is replaced whole by
a valid, empty document of the same MIME type. The attributes that describe it follow: Encapsulated Document
Length (0042,0015) is the new length, Burned In Annotation (0028,0301) and Recognizable Visual Features
(0028,0302) become ``NO`` (a blank page shows nothing). Document Title (0042,0010) has no row in Table E.1-1; it
describes the replaced document in free text, so medflow empties it (Type 2) or, under ``clean-descriptors``,
keeps only its known words (see :data:`tasks.deid.profile.MEDFLOW_DESCRIPTORS`).
"""

from __future__ import annotations

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from tasks.deid.actions import dummy_value

ENCAPSULATED_DOCUMENT = 0x00420011
MIME_TYPE = 0x00420012
DOCUMENT_LENGTH = 0x00420015
BURNED_IN_ANNOTATION = 0x00280301
RECOGNIZABLE_FEATURES = 0x00280302


def blank_pdf() -> bytes:
    """A valid one-page PDF 1.4 with no content (cross-reference offsets computed, not guessed)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << >> >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


#: MIME type (as in (0042,0012), case-insensitive) -> blank document of that type.
BLANK_DOCUMENTS: dict[str, bytes] = {
    "application/pdf": blank_pdf(),
    "text/xml": b'<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3"/>\n',
    "model/stl": b"solid blank\nendsolid blank\n",
    "model/obj": b"# blank\n",
    "model/mtl": b"# blank\n",
}


def blank_document(ds: Dataset) -> None:
    """Replace the encapsulated document of ``ds`` (if any) with a blank one and make its attributes agree."""
    d = ds._dict
    if ENCAPSULATED_DOCUMENT not in d:
        return
    mime = str(ds[MIME_TYPE].value or "").strip(" \x00").lower() if MIME_TYPE in d else ""
    document = BLANK_DOCUMENTS.get(mime) or bytes(dummy_value("OB"))
    length = len(document)
    if length % 2:
        document += b"\x00"  # OB values have even length; the length attribute counts the document only
    d[ENCAPSULATED_DOCUMENT] = DataElement(ENCAPSULATED_DOCUMENT, "OB", document)
    d[DOCUMENT_LENGTH] = DataElement(DOCUMENT_LENGTH, "UL", length)
    for flag in (BURNED_IN_ANNOTATION, RECOGNIZABLE_FEATURES):
        if flag in d:
            d[flag] = DataElement(flag, "CS", "NO")
