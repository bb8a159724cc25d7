"""Decode and write back every pixel format without OCR: what is not masked must come back unchanged."""

import io

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, JPEGLSLossless

from tasks.errors import PixelError, QuarantineReason
from tasks.pixels.codec import decode, write_back
from tasks.pixels.imaging import fill_value, to_rgb
from tasks.pixels.synthetic import us_dataset
from tests.tasks.pixels.conftest import load

BIG = 1 << 40


def _roundtrip(ds: pydicom.Dataset) -> pydicom.Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    buf.seek(0)
    return pydicom.dcmread(buf)


def _mask_box(pixels, ds):
    pixels.frames[:, 10:30, 20:60] = fill_value(pixels.frames, pixels.photometric, ds)


@pytest.mark.parametrize(
    ("name", "out_ts", "out_pi"),
    [
        ("OBXXXX1A.dcm", "1.2.840.10008.1.2.1", "PALETTE COLOR"),
        ("OBXXXX1A_rle_2frame.dcm", "1.2.840.10008.1.2.5", "PALETTE COLOR"),
        ("OBXXXX1A_expb.dcm", "1.2.840.10008.1.2.1", "PALETTE COLOR"),
        ("US1_UNCR.dcm", "1.2.840.10008.1.2.1", "RGB"),
        ("US1_J2KR.dcm", "1.2.840.10008.1.2.5", "RGB"),
        ("JPGLosslessP14SV1_1s_1f_8b.dcm", "1.2.840.10008.1.2.5", "MONOCHROME2"),
        ("gdcm-US-ALOKA-16.dcm", "1.2.840.10008.1.2.1", "PALETTE COLOR"),
        ("SC_rgb_rle_16bit.dcm", "1.2.840.10008.1.2.5", "RGB"),
        ("SC_rgb_32bit.dcm", "1.2.840.10008.1.2.1", "RGB"),
        ("SC_ybr_full_422_uncompressed.dcm", "1.2.840.10008.1.2.1", "YBR_FULL"),
        ("mlut_18.dcm", "1.2.840.10008.1.2.1", "MONOCHROME2"),
    ],
)
def test_lossless_inputs_stay_lossless_and_bit_exact_outside_the_mask(name, out_ts, out_pi):
    ds = load(name)
    pixels = decode(ds, max_bytes=BIG)
    before = pixels.frames.copy()
    # pydicom reads big-endian palette data as if little endian; the little-endian twin holds the true colours
    twin = load(name.replace("_expb", "")) if "_expb" in name else ds
    rgb_before = to_rgb(before, pixels.photometric, twin)
    _mask_box(pixels, ds)
    write_back(ds, pixels)
    back = _roundtrip(ds)
    assert str(back.file_meta.TransferSyntaxUID) == out_ts
    assert back.PhotometricInterpretation == out_pi
    again = decode(back, max_bytes=BIG).frames
    assert again.shape == before.shape
    keep = np.ones(before.shape[1:3], bool)
    keep[10:30, 20:60] = False
    assert np.array_equal(again[:, keep], before[:, keep])
    assert np.array_equal(again[:, ~keep], pixels.frames[:, ~keep])
    if out_pi == "PALETTE COLOR":  # the palette survives (big-endian LUT data is byte-swapped)
        assert np.array_equal(to_rgb(again, out_pi, back)[:, keep], rgb_before[:, keep])


def test_jpeg_ls_lossless_stays_lossless():
    frames = np.random.default_rng(0).integers(0, 4096, (2, 64, 80), dtype=np.uint16)
    ds = us_dataset(frames.astype(np.uint8))
    ds.set_pixel_data(frames, "MONOCHROME2", 12, generate_instance_uid=False)
    ds.compress(JPEGLSLossless, generate_instance_uid=False)
    pixels = decode(ds, max_bytes=BIG)
    assert np.array_equal(pixels.frames, frames)
    write_back(ds, pixels)
    assert not decode(_roundtrip(ds), max_bytes=BIG).lossy_input
    assert np.array_equal(decode(_roundtrip(ds), max_bytes=BIG).frames, frames)


def test_lossy_jpeg_is_reencoded_lossy_with_history():
    ds = load("examples_ybr_color.dcm")  # 30 frames, YBR_FULL_422, JPEG baseline
    pixels = decode(ds, max_bytes=BIG)
    assert pixels.photometric == "YBR_FULL_422" and pixels.lossy_input
    before = pixels.frames.copy()
    _mask_box(pixels, ds)
    write_back(ds, pixels)
    back = _roundtrip(ds)
    assert back.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert back.PhotometricInterpretation == "YBR_FULL_422"
    assert back.LossyImageCompression == "01"
    methods = back.LossyImageCompressionMethod
    assert (methods if isinstance(methods, str) else methods[-1]) == "ISO_10918_1"
    again = decode(back, max_bytes=BIG).frames
    assert again.shape == before.shape
    assert np.abs(again[:, 10:30, 20:60, 0].astype(int)).max() <= 8  # masked box is black (Y≈0) after JPEG
    diff = np.abs(again.astype(int) - before.astype(int))[:, 100:, 100:]
    assert diff.mean() < 2.5  # quality-95 re-encoding elsewhere


def test_too_large_is_refused_before_decoding():
    ds = load("color3d_jpeg_baseline.dcm")
    with pytest.raises(PixelError) as err:
        decode(ds, max_bytes=1_000_000)
    assert err.value.reason is QuarantineReason.TOO_LARGE


def test_undecodable_pixel_data_is_a_pixel_error():
    ds = us_dataset(np.zeros((2, 32, 32), np.uint8))
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8 not a jpeg", b"\xff\xd8 nor this"])
    ds["PixelData"].is_undefined_length = True
    with pytest.raises(PixelError) as err:
        decode(ds, max_bytes=BIG)
    assert err.value.reason is QuarantineReason.PIXELS_UNDECODABLE
    assert "not a jpeg" not in str(err.value)
