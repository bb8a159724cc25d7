"""The IOD choice of Annex E: ``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D`` resolved by the Type in the file's own IOD.

``iod_types.json`` (generated from the standard's module tables by :mod:`tasks.deid.generate_iod_types`) gives, per
SOP class, the Type of each such attribute where it occurs, keyed by the innermost enclosing sequence. The rule,
from the text of Table E.1-1 ("X unless Z or D is required to maintain IOD conformance"):

- Type 1/1C: a dummy (``D``) where the code offers it, else empty (``Z``);
- Type 2/2C: empty (``Z``) where offered, else a dummy (``D``: ``X/D`` on a Type 2 attribute);
- Type 3, or an attribute the IOD does not have there: removed (``X``); ``Z/D`` has no ``X``, so ``Z``.

A SOP class the table does not know (private, retired, newer than the table) uses the strictest Type of any IOD.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType

TABLE_FILE = Path(__file__).with_name("iod_types.json")
COMPOUND_CODES = frozenset({"X/Z", "X/D", "Z/D", "X/Z/D"})

#: (innermost enclosing sequence tag, 0 at the top level; attribute tag) -> 1 or 2
TypeMap = Mapping[tuple[int, int], int]


def _parse(entries: dict[str, str]) -> TypeMap:
    out: dict[tuple[int, int], int] = {}
    for key, kind in entries.items():
        parent, _, tag = key.rpartition("/")
        out[(int(parent, 16) if parent else 0, int(tag, 16))] = int(kind)
    return MappingProxyType(out)


@dataclass(frozen=True)
class IodTypes:
    """Types of the compound-action attributes per SOP class (loaded once per process)."""

    sop_classes: Mapping[str, str]
    iods: Mapping[str, TypeMap]
    any_iod: TypeMap
    source: str
    release: str

    def for_sop_class(self, sop_class_uid: str) -> TypeMap:
        """The type map of the IOD of ``sop_class_uid``; the strictest of all IODs for an unknown class."""
        iod = self.sop_classes.get(str(sop_class_uid).strip(" \x00"))
        return self.iods[iod] if iod is not None else self.any_iod


@cache
def load_iod_types(path: Path = TABLE_FILE) -> IodTypes:
    """Parse ``iod_types.json`` (cached per process)."""
    doc = json.loads(Path(path).read_text())
    return IodTypes(
        sop_classes=MappingProxyType(dict(doc["sop_classes"])),
        iods=MappingProxyType({name: _parse(entries) for name, entries in doc["iods"].items()}),
        any_iod=_parse(doc["any_iod"]),
        source=doc["source"],
        release=doc["release"],
    )


def choose(code: str, attribute_type: int | None) -> str:
    """The single action (``X``, ``Z`` or ``D``) for compound ``code`` on an attribute of ``attribute_type``."""
    choices = code.split("/")
    if attribute_type == 1:
        order = ("D", "Z", "X")
    elif attribute_type == 2:
        order = ("Z", "D", "X")
    else:
        order = ("X", "Z", "D")
    return next(c for c in order if c in choices)
