"""Detector precision: bf16 where the hardware computes it natively, the same boxes as fp32."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.errors import ConfigError
from tasks.pixels.detector import EasyOcrDetector, native_bf16_cpu, resolve_precision
from tasks.pixels.imaging import rgb8
from tests.tasks.pixels.conftest import load


def test_precision_resolution() -> None:
    assert resolve_precision("fp32", "cuda") == "fp32"
    assert resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16_cpu() else "fp32")
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("fp8", "cpu")


@pytest.mark.slow
def test_bf16_finds_the_boxes_fp32_finds() -> None:
    ds = load("OBXXXX1A.dcm")
    image = rgb8(ds.pixel_array, "PALETTE COLOR", ds)[:200]  # the top bar and the settings column
    fp32 = EasyOcrDetector(device="cpu", precision="fp32").detect(image)
    bf16 = EasyOcrDetector(device="cpu", precision="bf16").detect(image)
    assert len(fp32) >= 5 and len(bf16) == len(fp32)
    for a, b in zip(sorted(fp32), sorted(bf16), strict=True):
        assert np.abs(np.subtract(a, b)).max() <= 4


def test_settings_choose_the_engine_and_every_frame_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.deid.context import DeidContext
    from tasks.deid.keys import load_key

    monkeypatch.setenv("MEDFLOW_OCR_EVERY_FRAME", "true")
    monkeypatch.setenv("MEDFLOW_OCR_ENGINE", "rapidocr")
    ctx = DeidContext.create(load_key(env_value="ab" * 32))
    assert ctx.pixel_options.ocr_every_frame and ctx.pixel_options.ocr_engine == "rapidocr"
    monkeypatch.delenv("MEDFLOW_OCR_EVERY_FRAME")
    monkeypatch.delenv("MEDFLOW_OCR_ENGINE")
    assert not DeidContext.create(load_key(env_value="ab" * 32)).pixel_options.ocr_every_frame


def test_an_unknown_engine_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.deid.context import DeidContext
    from tasks.deid.keys import load_key

    monkeypatch.setenv("MEDFLOW_OCR_ENGINE", "tesseract")
    with pytest.raises(ConfigError, match="unknown ocr engine"):
        DeidContext.create(load_key(env_value="ab" * 32))
