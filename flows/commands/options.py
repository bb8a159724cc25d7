"""Command-line options that several ``medflow`` commands share, declared once (same flag, help and default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

KeyFile = Annotated[
    Path | None, typer.Option("--key-file", help="Key file from `medflow keygen` (else MEDFLOW_DEID_KEY).")
]
Workers = Annotated[int | None, typer.Option("--workers", min=1, help="Parallel worker processes.")]
CleanPixels = Annotated[str | None, typer.Option("--clean-pixels", help="Burned-in text removal: auto, on or off.")]
OcrEveryFrame = Annotated[
    bool, typer.Option("--ocr-every-frame", help="Paranoid mode: detect burned-in text on every frame of a cine.")
]
OcrEngine = Annotated[str | None, typer.Option("--ocr-engine", help="Text detector: easyocr (default) or rapidocr.")]
