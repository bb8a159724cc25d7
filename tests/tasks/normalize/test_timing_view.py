"""Frame timestamps (FrameTimeVector > FrameTime > CineRate) and nearest-frame resampling of the view."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from tasks.normalize.timing import frame_timing
from tasks.normalize.view import make_view, resample_indices


def test_frame_time_vector_wins_and_gives_per_frame_times():
    ds = Dataset()
    ds.FrameTimeVector = [0, 20, 20, 40]
    ds.FrameTime = 33.3
    timing = frame_timing(ds, 4)
    assert timing.source == "FrameTimeVector"
    np.testing.assert_allclose(timing.times_ms, [0, 20, 40, 80])
    assert timing.fps == pytest.approx(1000 * 3 / 80)


def test_frame_time_then_cine_rate_then_none():
    ds = Dataset()
    ds.FrameTime = 40
    assert frame_timing(ds, 3).fps == pytest.approx(25) and frame_timing(ds, 3).source == "FrameTime"
    ds = Dataset()
    ds.CineRate = 30
    timing = frame_timing(ds, 3)
    assert timing.source == "CineRate" and timing.times_ms[2] == pytest.approx(2000 / 30)
    assert frame_timing(Dataset(), 3).fps is None


def test_real_cine_timing():
    ds = pydicom.dcmread(get_testdata_file("color3d_jpeg_baseline.dcm"), stop_before_pixels=True)
    timing = frame_timing(ds, int(ds.NumberOfFrames))
    assert timing.fps is not None and timing.times_ms.size == 120


def test_resample_up_and_down_by_nearest_frame():
    times_25 = np.arange(10) * 40.0  # 25 fps, 360 ms
    up = resample_indices(times_25, 50)
    assert up.size == 19 and up[0] == 0 and up[-1] == 9
    assert np.all(np.diff(up) >= 0) and set(np.bincount(up)) <= {1, 2}
    times_100 = np.arange(20) * 10.0  # 100 fps
    np.testing.assert_array_equal(resample_indices(times_100, 50), np.arange(0, 20, 2))


def test_view_is_grayscale_square_uint8():
    frames = np.zeros((4, 48, 64, 3), dtype=np.uint8)
    frames[:, :, :, 1] = 200
    view = make_view(frames, np.asarray([0, 2, 3]), 112)
    assert view.shape == (3, 112, 112) and view.dtype == np.uint8
    assert int(view[0, 50, 50]) == round(0.587 * 200)
    wide = (np.arange(2 * 8 * 8, dtype=np.uint16).reshape(2, 8, 8) * 100).astype(np.uint16)
    assert make_view(wide, np.asarray([0, 1]), 16).max() == 255
