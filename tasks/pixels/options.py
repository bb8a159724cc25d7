"""Options and result of burned-in text removal; plain data, picklable, no PHI."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PixelOptions:
    """How pixels are cleaned. Built once at the entry point and passed down (picklable)."""

    ocr_engine: str = "easyocr"
    """Text detector: ``"easyocr"`` (CRAFT, the default) or ``"rapidocr"`` (bench extra)."""
    ocr_every_frame: bool = False
    """Paranoid mode: run the detector on every frame instead of a temporal composite plus samples."""
    margin_px: int = 3
    """Pixels added on each side of a detected text box before masking."""
    device: str = "auto"
    """``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``."""
    canvas_size: int = 640
    """Longest side the detector resizes an image to (easyocr ``canvas_size``)."""
    precision: str = "auto"
    """Detector arithmetic: ``"bf16"``, ``"fp32"`` or ``"auto"`` (bf16 on a GPU or a CPU with native bf16)."""
    runtime: str = "auto"
    """What runs the detector: ``"torch"``, ``"openvino"`` or ``"auto"`` (OpenVINO for fp32 on a CPU)."""
    sample_frames: int = 0
    """Frames detected on besides the two composites (evenly spaced) for a cine. 0 by default: the median and
    maximum composites held every labelled box in the benchmark, and each extra image costs a detector pass."""
    refine_boxes: bool = True
    """Shrink each detected box to the ink it holds on the sides where the ink provably ends (see
    ``tasks.pixels.refine``); off masks the detector's box plus the margin."""
    verify_passes: int = 4
    """Detect-and-mask passes on the cleaned median composite (the frame for a still); text still found by the
    last pass quarantines the file as TEXT_PERSISTS."""
    blank_outside_region: bool = True
    """Blank everything outside the ultrasound scan region."""
    max_pixel_bytes: int = 4 * 1024**3
    """Largest decoded pixel array accepted (checked from the header before decoding)."""
    layout_file: str | None = None
    """Where device text layouts persist between runs (a dataset's ``pixel-layouts.json``); None: memory only."""
    fill_value: int | None = None
    """Value written into masked pixels; ``None`` means the darkest value of the photometric interpretation."""

    def detector(self) -> Any:
        """The process-wide text detector these options name (``tasks.pixels.detector.get_detector``)."""
        from tasks.pixels.detector import get_detector

        return get_detector(self.ocr_engine, self.device, self.canvas_size, self.precision, self.runtime)

    @classmethod
    def from_settings(cls, settings: Any) -> PixelOptions:
        """Options from the process settings (``tasks.config.Settings``: engine and every-frame mode); an unknown
        engine is a ConfigError here, at start-up, not a failure of every file later."""
        from tasks.errors import ConfigError
        from tasks.pixels.detector import OcrEngine

        if settings.ocr_engine not in {e.value for e in OcrEngine}:
            raise ConfigError(
                f"unknown ocr engine {settings.ocr_engine!r}; choose one of {[e.value for e in OcrEngine]}"
            )
        return cls(ocr_engine=settings.ocr_engine, ocr_every_frame=settings.ocr_every_frame)


@dataclass
class PixelCleaningResult:
    """A JSON-safe report, and the cleaned pixels made from ``source`` on first use (``pixels``)."""

    report: dict[str, Any] = field(default_factory=dict)
    source: Callable[[], np.ndarray] | None = field(default=None, repr=False)
    """Makes the cleaned pixels (picklable: a ``functools.partial`` of a module function)."""

    @functools.cached_property
    def pixels(self) -> np.ndarray:
        """Cleaned pixels, frames first ((T,H,W) or (T,H,W,3), RGB for colour). Made lazily: converting a colour
        cine to RGB costs as much as masking it, and de-identification alone never reads it."""
        if self.source is None:
            raise ValueError("no cleaned pixels")
        return self.source()
