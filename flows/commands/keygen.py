"""``medflow keygen PATH``: write a new random de-identification key (mode 0600)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def command(path: Annotated[Path, typer.Argument(help="Where to write the key (must not exist).")]) -> None:
    """Write a strong random key for `medflow deid --key-file`. Keep it secret; back it up."""
    from rich.console import Console

    from tasks.deid.keys import write_new_key
    from tasks.errors import MedflowError

    console = Console(stderr=True)
    try:
        write_new_key(path)
    except MedflowError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"new key written with mode 0600: {path}  (the same key gives the same pseudonyms)")
