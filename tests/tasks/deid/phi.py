"""Test helper: the identifying values of an input (per the compiled profile) and a search of output bytes."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID_dictionary

from tasks.deid.actions import DUMMY_BY_VR

#: Operations after which the original value must be gone from the output.
REMOVING_OPS = {"X", "Z", "D", "U", "MAPUID", "PID", "PNAME", "ACC", "X/Z", "X/D", "Z/D", "X/Z/D"}
MIN_LENGTH = 6  # shorter values ("F", "CT", "1") occur by chance in any file


def _strings(value) -> list[str]:
    values = value if isinstance(value, (list, MultiValue)) else [value]
    out = []
    for v in values:
        if isinstance(v, (str, bytes)) or v.__class__.__name__ in (
            "PersonName",
            "UID",
            "DA",
            "DT",
            "TM",
            "IS",
            "DSfloat",
        ):
            text = v.decode("latin-1", "replace") if isinstance(v, bytes) else str(v)
            out.append(text.strip(" \x00"))
    return out


def identifying_values(ds: Dataset, rules: dict) -> tuple[set[str], set[str]]:
    """Values of ``ds`` (any depth, file meta included) the profile removes or replaces, and values it keeps.

    A value that is kept elsewhere (e.g. a manufacturer name also typed into a station name) may
    legitimately appear in the output: callers subtract the kept values of all inputs.
    """
    found: set[str] = set()
    retained: set[str] = set()
    datasets = [ds]
    if getattr(ds, "file_meta", None) is not None:
        datasets.append(ds.file_meta)
    for top in datasets:
        for elem in top.iterall():
            if elem.VR == "SQ":
                continue
            op = rules.get(elem.tag, (None,))[0]
            identifying = op in REMOVING_OPS or (op == "SHIFT") or elem.tag.group % 2 == 1
            if elem.tag == 0x00020003:  # Media Storage SOP Instance UID is mapped like the SOP Instance UID
                identifying = True
            for text in _strings(elem.value):
                for part in [text, *text.split("^")]:
                    part = part.strip()
                    if len(part) < MIN_LENGTH or part in UID_dictionary:
                        continue
                    (found if identifying else retained).add(part)
    dummies = {str(v) for v in DUMMY_BY_VR.values()}
    return {v for v in found - dummies if v.replace(".", "").replace("0", "")}, retained


def surviving(values: set[str], data: bytes) -> set[str]:
    """The ``values`` found in ``data`` (as UTF-8, Latin-1 and UTF-16-LE bytes)."""
    hits = set()
    for value in values:
        for encoding in ("utf-8", "latin-1", "utf-16-le"):
            try:
                needle = value.encode(encoding)
            except UnicodeEncodeError:
                continue
            if needle in data:
                hits.add(value)
                break
    return hits


def all_bytes(root: Path) -> bytes:
    """Every byte under ``root`` (files, plus the file names themselves)."""
    chunks = []
    for path in sorted(root.rglob("*")):
        chunks.append(str(path.relative_to(root)).encode())
        if path.is_file():
            chunks.append(path.read_bytes())
    return b"\n".join(chunks)
