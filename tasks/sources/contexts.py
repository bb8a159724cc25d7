"""Presentation contexts medflow offers and accepts: every storage SOP class in the common transfer syntaxes.

One list for the C-GET requestor, the listener's C-STORE SCP and the C-MOVE destination, so a peer can send
what it stores without transcoding. Video syntaxes (MPEG, HEVC) are left out: the ingest cannot decode them, so
a sender is told at association time instead of an instance being quarantined later.
"""

from __future__ import annotations

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AllStoragePresentationContexts, build_context
from pynetdicom.presentation import PresentationContext

TRANSFER_SYNTAXES = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)
"""Most common first: a requestor limited in contexts proposes the first few."""

ACCEPTED_SYNTAXES = (*TRANSFER_SYNTAXES, ExplicitVRBigEndian)
"""What an acceptor takes (big endian is retired but still sent by old modalities; pydicom reads it)."""


def storage_contexts() -> list[PresentationContext]:
    """Every storage SOP class pynetdicom knows, each in :data:`ACCEPTED_SYNTAXES` (for an SCP)."""
    return [build_context(cx.abstract_syntax, list(ACCEPTED_SYNTAXES)) for cx in AllStoragePresentationContexts]
