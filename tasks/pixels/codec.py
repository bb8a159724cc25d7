"""Decode pixel data into a working array and write cleaned pixels back as a valid DICOM object.

The working array is frames first, in the stored colour space: (T,H,W) for MONOCHROME1/2 and PALETTE COLOR
(palette indices), (T,H,W,3) for RGB and YBR_FULL (YBR is decoded ``raw``: no slow YBR→RGB conversion, and
masks are applied in YBR so the stored image is cleaned consistently). YBR_FULL_422 is decoded to full chroma.

Write-back rules: lossless inputs stay lossless and bit-exact outside the masked boxes (uncompressed inputs
become Explicit VR Little Endian; compressed lossless inputs RLE Lossless). Lossy 8-bit inputs are re-encoded as
JPEG baseline (Pillow's libjpeg, no colour conversion for YBR) and the LossyImageCompression attributes get the
new ratio and method appended (PS3.3 C.7.6.1.1.5); other lossy inputs are stored uncompressed and keep
LossyImageCompression "01".
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
from pydicom import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from pydicom.uid import JPEGLossless as JPEGLosslessP14

from tasks.errors import PixelError, QuarantineReason

log = logging.getLogger(__name__)

NATIVE_SYNTAXES = frozenset(
    {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}
)
LOSSLESS_SYNTAXES = NATIVE_SYNTAXES | {
    RLELossless,
    JPEGLosslessP14,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEG2000Lossless,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
}
YBR = frozenset({"YBR_FULL", "YBR_FULL_422"})
JPEG_QUALITY = 95


@dataclass
class DecodedPixels:
    """Frames first, in the stored colour space named by ``photometric`` (after decoding)."""

    frames: np.ndarray
    photometric: str
    transfer_syntax: UID
    bits_stored: int

    @property
    def lossy_input(self) -> bool:
        return self.transfer_syntax not in LOSSLESS_SYNTAXES

    @property
    def is_colour(self) -> bool:
        return self.frames.ndim == 4


def declared_bytes(ds: Dataset) -> int:
    """Decoded size declared by the header: Rows*Columns*Frames*Samples*ceil(BitsAllocated/8)."""
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
        bits = int(ds.BitsAllocated)
        return int(ds.Rows) * int(ds.Columns) * max(frames, 1) * int(ds.get("SamplesPerPixel") or 1) * -(-bits // 8)
    except (AttributeError, TypeError, ValueError):
        raise PixelError(
            "image pixel module incomplete: (0028,0010)/(0028,0011)/(0028,0100) missing or invalid",
            reason=QuarantineReason.PIXELS_UNDECODABLE,
        ) from None


def check_size(ds: Dataset, max_bytes: int) -> int:
    """Raise TOO_LARGE before any pixel allocation when the declared size exceeds ``max_bytes``."""
    size = declared_bytes(ds)
    if size > max_bytes:
        raise PixelError(
            f"declared pixel data of {size} bytes exceeds the limit of {max_bytes} bytes; raise max_pixel_bytes",
            reason=QuarantineReason.TOO_LARGE,
        )
    return size


def decode(ds: Dataset, *, max_bytes: int) -> DecodedPixels:
    """Decode all frames of ``ds``; any failure is a PixelError (PIXELS_UNDECODABLE), never a release."""
    if "PixelData" not in ds:
        raise PixelError("no (7FE0,0010) Pixel Data to clean (float/double pixel data is not supported)")
    check_size(ds, max_bytes)
    tsyntax = UID(ds.file_meta.get("TransferSyntaxUID", ImplicitVRLittleEndian))
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    try:
        fast = _decode_jpeg_ybr(ds) if tsyntax == JPEGBaseline8Bit and photometric in YBR else None
        if fast is not None:
            arr, meta = fast, {"photometric_interpretation": photometric}
        else:
            arr, meta = get_decoder(tsyntax).as_array(ds, raw=photometric in YBR)
    except Exception as exc:
        raise PixelError(
            f"pixel data (7FE0,0010) could not be decoded (transfer syntax {tsyntax}, {photometric or 'no'} "
            f"photometric interpretation)",
            reason=QuarantineReason.PIXELS_UNDECODABLE,
        ) from exc
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    if frames == 1 and arr.ndim == (3 if samples > 1 else 2):
        arr = arr[None]
    expected = (frames, int(ds.Rows), int(ds.Columns)) + ((samples,) if samples > 1 else ())
    if arr.shape != expected:
        raise PixelError(
            f"decoded pixel data shape {arr.shape} does not match the header {expected}",
            reason=QuarantineReason.PIXELS_INCONSISTENT,
        )
    out_pi = str(meta.get("photometric_interpretation", photometric))
    return DecodedPixels(np.ascontiguousarray(arr), out_pi, tsyntax, int(ds.get("BitsStored") or ds.BitsAllocated))


def _decode_jpeg_ybr(ds: Dataset) -> np.ndarray | None:
    """JPEG baseline YBR frames decoded by Pillow (libjpeg-turbo) straight to YCbCr, no colour conversion:
    several times faster than the reference decoder for long cines. None when it does not apply."""
    from PIL import Image
    from pydicom.encaps import generate_frames

    frames = int(ds.get("NumberOfFrames") or 1)
    out = np.empty((frames, int(ds.Rows), int(ds.Columns), 3), np.uint8)
    count = 0
    for count, data in enumerate(generate_frames(ds.PixelData, number_of_frames=frames), start=1):
        if count > frames:
            return None
        with Image.open(io.BytesIO(data)) as im:
            if im.mode != "RGB" or im.size != (out.shape[2], out.shape[1]) or "adobe" in im.info:
                return None
            im.draft("YCbCr", im.size)
            decoded = np.asarray(im.convert("YCbCr") if im.mode != "YCbCr" else im)
        out[count - 1] = decoded
    return out if count == frames else None


def write_back(ds: Dataset, pixels: DecodedPixels) -> UID:
    """Store ``pixels.frames`` in ``ds`` (updating the transfer syntax and Image Pixel module); return the syntax."""
    big_endian = pixels.transfer_syntax == ExplicitVRBigEndian
    try:
        if pixels.lossy_input and _jpeg_encodable(ds, pixels):
            _write_jpeg_baseline(ds, pixels)
        else:
            _write_native(ds, pixels)
            if pixels.transfer_syntax not in NATIVE_SYNTAXES and pixels.transfer_syntax in LOSSLESS_SYNTAXES:
                ds.compress(RLELossless, generate_instance_uid=False)
    except PixelError:
        raise
    except Exception as exc:
        raise PixelError("cleaned pixel data could not be encoded", reason=QuarantineReason.ENCODE_FAILED) from exc
    if big_endian:
        _to_little_endian(ds)
    return UID(ds.file_meta.TransferSyntaxUID)


def _write_native(ds: Dataset, pixels: DecodedPixels) -> None:
    arr = pixels.frames
    bits = int(ds.BitsAllocated)
    if bits == 1:
        from pydicom.pixels import pack_bits

        data = pack_bits(arr)
    else:
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    if len(data) % 2:
        data += b"\x00"
    ds.PixelData = data
    ds["PixelData"].VR = "OB" if bits <= 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    for tag in (0x7FE00001, 0x7FE00002):  # extended offset table of the old encapsulated data
        ds.pop(tag, None)
    ds.PhotometricInterpretation = pixels.photometric
    if arr.ndim == 4:
        ds.PlanarConfiguration = 0
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def _jpeg_encodable(ds: Dataset, pixels: DecodedPixels) -> bool:
    return (
        pixels.frames.dtype == np.uint8
        and int(ds.BitsAllocated) == 8
        and pixels.photometric in {"MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422"}
    )


def _write_jpeg_baseline(ds: Dataset, pixels: DecodedPixels) -> None:
    from PIL import Image

    arr = pixels.frames
    if pixels.photometric in YBR:
        mode, subsampling = "YCbCr", "4:2:2" if pixels.photometric == "YBR_FULL_422" else "4:4:4"
        out_pi = pixels.photometric
    elif pixels.photometric == "RGB":
        mode, subsampling, out_pi = "RGB", "4:2:2", "YBR_FULL_422"  # libjpeg converts RGB→YCbCr
    else:
        mode, subsampling, out_pi = "L", "4:4:4", "MONOCHROME2"
    fragments = []
    for frame in arr:
        buf = io.BytesIO()
        Image.fromarray(frame, mode=mode).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=subsampling)
        fragments.append(buf.getvalue())
    ds.PixelData = encapsulate(fragments, has_bot=len(fragments) > 1)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    for tag in (0x7FE00001, 0x7FE00002):
        ds.pop(tag, None)
    ds.PhotometricInterpretation = out_pi
    if arr.ndim == 4:
        ds.PlanarConfiguration = 0
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ratio = arr.nbytes / max(1, sum(len(f) for f in fragments))
    _append_lossy(ds, ratio, "ISO_10918_1")


def _append_lossy(ds: Dataset, ratio: float, method: str) -> None:
    """LossyImageCompression "01" with this compression appended to the ratio and method history."""
    ratios = [str(r) for r in _as_list(ds.get("LossyImageCompressionRatio"))]
    methods = [str(m) for m in _as_list(ds.get("LossyImageCompressionMethod"))]
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.2f}"[:16]]
    ds.LossyImageCompressionMethod = [*methods, method]


def _as_list(value: object) -> list[object]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)  # type: ignore[arg-type]
    return [value]


def mark_lossy_history(ds: Dataset, pixels: DecodedPixels) -> None:
    """A lossy input stored without new lossy compression still says it was lossy compressed once."""
    if pixels.lossy_input and str(ds.get("LossyImageCompression", "")) != "01":
        ds.LossyImageCompression = "01"


_WORD_VRS = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}


def _to_little_endian(ds: Dataset) -> None:
    """Make a (retired) Explicit VR Big Endian dataset writable as little endian.

    Every element is parsed (iterall converts raw elements); binary word values (OW, OL, OF, OD, OV) keep
    the bytes as read, so their words are swapped; then the recorded original encoding is updated.
    """
    for elem in ds.iterall():
        size = _WORD_VRS.get(elem.VR)
        if size and elem.tag != 0x7FE00010 and isinstance(elem.value, bytes) and len(elem.value) % size == 0:
            elem.value = np.frombuffer(elem.value, dtype=f">u{size}").astype(f"<u{size}").tobytes()
    ds.set_original_encoding(False, True, ds.original_character_set)
