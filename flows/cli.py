"""The ``medflow`` command line. Each command lives in ``flows/commands/<name>.py``.

Commands import their heavy dependencies (torch, Prefect, pydicom) inside the command body, so
``medflow --help`` stays fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="medflow",
    help="De-identified, quality-checked, ML-ready datasets from clinical DICOM, and models trained on them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold PHI
)

# Registered commands (one line each; keep alphabetical).
