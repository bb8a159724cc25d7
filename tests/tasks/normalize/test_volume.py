"""Volume assembly from single-frame slices (CT_small.dcm copies) and from an enhanced multi-frame MR."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from tasks.errors import PixelError
from tasks.normalize.volume import assemble_volume, slice_from_dataset, slices_from_enhanced, slices_from_volume


def _ct_slices(n: int = 5, spacing: float = 2.5, shuffle_seed: int = 0):
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    pixels = base.pixel_array
    origin = np.asarray([float(v) for v in base.ImagePositionPatient])
    normal = np.cross(
        np.asarray([float(v) for v in base.ImageOrientationPatient[:3]]),
        np.asarray([float(v) for v in base.ImageOrientationPatient[3:]]),
    )
    slices = []
    for k in range(n):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.ImagePositionPatient = [float(v) for v in origin + k * spacing * normal]
        slices.append(slice_from_dataset(ds, pixels + k, f"2.25.{k}"))
    order = np.random.default_rng(shuffle_seed).permutation(n)
    return [slices[i] for i in order], base


def test_ct_slices_sorted_along_normal_with_spacing_from_positions():
    slices, base = _ct_slices()
    volume = assemble_volume(slices, hounsfield=True)
    assert volume.data.shape == (5, 128, 128) and volume.data.dtype == np.int16
    assert volume.spacing[0] == pytest.approx(2.5)
    assert volume.spacing_source == "positions"
    assert volume.instance_ids == [f"2.25.{k}" for k in range(5)]
    slope, intercept = float(base.RescaleSlope), float(base.RescaleIntercept)
    expected = np.rint(base.pixel_array.astype(float) * slope + intercept + 2 * slope)
    np.testing.assert_array_equal(volume.data[2], expected.astype(np.int16))


def test_spacing_comes_from_positions_not_slice_thickness():
    slices, base = _ct_slices(spacing=1.25)
    assert float(base.SliceThickness) != 1.25
    assert assemble_volume(slices, hounsfield=True).spacing[0] == pytest.approx(1.25)


def test_duplicate_positions_dropped_and_irregular_gaps_flagged():
    slices, _ = _ct_slices(n=4)
    slices.append(slices[0])
    volume = assemble_volume(slices, hounsfield=True)
    assert volume.duplicates_dropped == 1 and volume.data.shape[0] == 4
    del slices[-1]
    slices.sort(key=lambda s: float(s.position[2]))
    slices[-1].position = slices[-1].position + 10 * (slices[-1].position - slices[-2].position)
    assert assemble_volume(slices, hounsfield=True).irregular_spacing


def test_mismatched_slice_sizes_raise_pixel_error():
    slices, _ = _ct_slices(n=3)
    slices[1].pixels = slices[1].pixels[:64]
    with pytest.raises(PixelError, match="differ in size"):
        assemble_volume(slices, hounsfield=True)


def test_enhanced_multiframe_mr_uses_per_frame_positions():
    ds = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    slices = slices_from_enhanced(ds, ds.pixel_array, "2.25.1")
    volume = assemble_volume(slices, hounsfield=False)
    assert volume.data.shape == (10, 64, 64)
    assert volume.spacing[0] > 0 and volume.spacing[1] > 0
    np.testing.assert_array_equal(np.sort(volume.data.ravel()), np.sort(ds.pixel_array.astype(np.int16).ravel()))


def test_a_stored_volume_reassembles_with_late_slices_into_the_same_volume():
    slices, _ = _ct_slices(n=5)
    whole = assemble_volume(slices, hounsfield=True)
    early = [s for s in slices if s.instance_id in ("2.25.0", "2.25.2", "2.25.4")]
    late = [s for s in slices if s.instance_id in ("2.25.1", "2.25.3")]
    stored = assemble_volume(early, hounsfield=True)
    attrs = {
        "slice_positions_mm": stored.positions,
        "orientation": stored.orientation,
        "slice_instance_ids": stored.instance_ids,
        "spacing": {"y_mm": stored.spacing[1], "x_mm": stored.spacing[2]},
    }
    again = assemble_volume(slices_from_volume(stored.data, attrs) + late, hounsfield=True)
    np.testing.assert_array_equal(again.data, whole.data)  # stored HU are not rescaled a second time
    assert again.instance_ids == whole.instance_ids and again.spacing == pytest.approx(whole.spacing)


def test_a_stored_volume_without_slice_geometry_cannot_be_extended():
    with pytest.raises(PixelError) as info:
        slices_from_volume(np.zeros((2, 4, 4), np.int16), {"slice_instance_ids": ["a", "b"]})
    assert info.value.reason == "normalise-failed"
