"""Reading checkpoints and weight files: ``torch.load(weights_only=True)`` only, so a file can hold tensors and plain
data but never code (a pickle that names a callable is refused before anything runs).

medflow's Lightning checkpoints need nothing beyond that (no saved hyperparameter objects). A future checkpoint
that stores a class of ours would list it with ``torch.serialization.add_safe_globals`` here, never by switching
``weights_only`` off.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from tasks.errors import ConfigError


class UnsafeCheckpoint(ConfigError):
    """A checkpoint or weights file holds objects other than tensors and plain data."""


def load_checkpoint(path: Path) -> Any:
    """The object saved in ``path``, on the CPU; :class:`UnsafeCheckpoint` when it needs code to load."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message quotes the offending global; the remedy is the same for all
        raise UnsafeCheckpoint(
            "checkpoint refused: it holds objects other than tensors and plain data (loading it could run code); "
            "use a checkpoint written by medflow or a plain state dict"
        ) from None


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a Lightning checkpoint (or the file itself when it is a plain state dict)."""
    state = load_checkpoint(path)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UnsafeCheckpoint("checkpoint holds no state dict; pass a file saved with torch.save(state_dict)")
    return state


def backbone_config(path: Path) -> dict[str, Any] | None:
    """The config a ``medflow pretrain`` checkpoint carries under ``medflow`` (backbone, kind, clip, methods), or
    None for a plain state dict (e.g. Kinetics-400 weights)."""
    state = load_checkpoint(path)
    meta = state.get("medflow") if isinstance(state, dict) else None
    return dict(meta) if isinstance(meta, dict) else None


def check_backbone_weights(path: Path, backbone: str, kind: str) -> dict[str, Any] | None:
    """:func:`backbone_config` of ``path``; ConfigError when it was pretrained for another backbone or kind."""
    meta = backbone_config(path)
    if meta is None:
        return None
    for what, want in (("backbone", backbone), ("kind", kind)):
        if meta.get(what) != want:
            raise ConfigError(
                f"the weights were pretrained for {what} {meta.get(what)!r}, not {want!r}; pass --{what} "
                f"{meta.get(what)} or pretrain a {want} backbone"
            )
    return meta
