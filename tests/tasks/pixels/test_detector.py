"""Detector precision and runtime: bf16 where the hardware computes it natively, OpenVINO for fp32 on a CPU,
the same boxes as torch fp32."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.errors import ConfigError
from tasks.pixels.detector import EasyOcrDetector, native_bf16_cpu, resolve_precision, resolve_runtime
from tasks.pixels.imaging import rgb8
from tests.tasks.pixels.conftest import load


def test_precision_resolution() -> None:
    assert resolve_precision("fp32", "cuda") == "fp32"
    assert resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16_cpu() else "fp32")
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("fp8", "cpu")


def test_runtime_resolution() -> None:
    assert resolve_runtime("auto", "fp32", "cpu") == "openvino"  # openvino is a dependency
    assert resolve_runtime("auto", "bf16", "cpu") == "torch"
    assert resolve_runtime("auto", "fp32", "cuda") == "torch"
    assert resolve_runtime("torch", "fp32", "cpu") == "torch"
    with pytest.raises(ConfigError, match="CPU only"):
        resolve_runtime("openvino", "fp32", "cuda")
    with pytest.raises(ConfigError, match="runtime"):
        resolve_runtime("tensorrt", "fp32", "cpu")


@pytest.mark.slow
def test_openvino_finds_the_boxes_torch_finds() -> None:
    ds = load("OBXXXX1A.dcm")
    image = rgb8(ds.pixel_array, "PALETTE COLOR", ds)
    torch_fp32 = EasyOcrDetector(device="cpu", precision="fp32", runtime="torch")
    openvino = EasyOcrDetector(device="cpu", precision="fp32", runtime="openvino")
    assert openvino.runtime == "openvino" and torch_fp32.runtime == "torch"
    boxes = 0
    for crop in (image, image[:200], image[150:, 100:500]):  # sizes vary: the compiled model keeps them dynamic
        expected, got = sorted(torch_fp32.detect(crop)), sorted(openvino.detect(crop))
        boxes += len(expected)
        assert expected and len(got) == len(expected)
        for a, b in zip(expected, got, strict=True):
            assert np.abs(np.subtract(a, b)).max() <= 1
    assert boxes >= 10


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
