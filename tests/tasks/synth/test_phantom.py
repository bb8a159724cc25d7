"""The phantom's ejection fraction is in the motion: the cavity volume (area-length) follows the EF we ask for."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tasks.synth import phantom


def _params(ef: float, **kw: object) -> phantom.EchoParams:
    base = dict(frames=50, height=112, width=112, fps=50.0, ef=ef, heart_rate=60.0, phase=0.0, ed_radius=0.32,
                tilt_deg=0.0, top_bar=0)  # fmt: skip
    return phantom.EchoParams(**{**base, **kw})


@pytest.mark.parametrize("ef", [25.0, 45.0, 65.0])
def test_cavity_volume_change_matches_ejection_fraction(ef: float) -> None:
    frames = phantom.echo_frames(_params(ef), np.random.default_rng(0))
    yy, xx = np.mgrid[0:112, 0:112]
    a_long, a_short = 0.32 * 112, 0.55 * 0.32 * 112  # the end-diastolic cavity
    ed_cavity = ((yy - 0.55 * 112) / (a_long + 1)) ** 2 + ((xx - 55.5) / (a_short + 1)) ** 2 < 1
    smooth = np.stack([cv2.medianBlur(f, 5) for f in frames])  # speckle off, edges kept
    dark = (smooth < 40) & ed_cavity[None]
    area = dark.reshape(len(frames), -1).sum(1).astype(float)
    volume = area**1.5  # area-length: V ∝ A^(3/2)
    measured = 100 * (volume.max() - volume.min()) / volume.max()
    assert measured == pytest.approx(ef, abs=4)


def test_contraction_scale_has_end_systole_at_the_requested_ef() -> None:
    t = np.linspace(0, 1, 1001)
    s = phantom.contraction_scale(t, heart_rate=60, phase=0.0, ef=40.0)
    assert s.max() == pytest.approx(1.0)
    assert 1 - s.min() ** 3 == pytest.approx(0.40, abs=1e-3)


def test_sector_mask_is_a_fan_below_the_bar() -> None:
    mask = phantom.sector_mask(128, 160, top=24)
    assert not mask[:24].any()
    assert mask[100, 80] and not mask[100, 2]


def test_burned_in_text_lands_in_the_top_bar_only() -> None:
    frames = np.zeros((3, 64, 160), np.uint8)
    out = phantom.burn_in_text(frames, ["SMITH, John", "ID 12345678"], 24)
    assert out[:, :24].max() == 255 and out[:, 24:].max() == 0
    assert np.array_equal(out[0], out[2])  # static overlay, as on a scanner


def test_volume_is_int16_with_body_and_air() -> None:
    vol = phantom.volume((8, 32, 32), "CT", np.random.default_rng(1))
    assert vol.dtype == np.int16 and vol.shape == (8, 32, 32)
    assert vol.min() < -900 and vol.max() > 20
