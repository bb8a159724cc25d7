"""Generate ``tasks/deid/iod_types.json``: the Type of each compound-action attribute in each IOD of the standard.

Annex E lets the IOD decide ``X/Z``, ``X/D``, ``Z/D`` and ``X/Z/D`` ("X unless Z or D is required to maintain IOD
conformance"). This script reads the module tables of PS3.3 in the machine-readable form of the innolitics
dicom-standard project (MIT licence) and keeps only what the engine needs: for every SOP class, the attributes of
those rows that are Type 1/1C or 2/2C where they occur, keyed by the innermost enclosing sequence. Run it when the
standard release changes (the generated file is committed in the package)::

    pip download dicom-standard==0.1.0 --no-deps -d /tmp/ds && unzip -q /tmp/ds/*.whl -d /tmp/ds
    python -m tasks.deid.generate_iod_types /tmp/ds/dicom_standard-0.1.0.data/data/standard

The committed table comes from that wheel (PS3.3 of April 2020): the project's newer copies (2024b and later) lack
the 38 MB ``module_to_attributes.json`` where this table was made. Any folder with the same six files of a newer
release regenerates it with the command above; SOP classes newer than the table get the strictest Type of any IOD.

Input files (from that folder): ``sops.json``, ``ciods.json``, ``ciod_to_modules.json``,
``module_to_attributes.json``, ``ciod_to_fg_macros.json`` and ``macro_to_attributes.json``.

Output: ``{"source", "release", "sop_classes": {uid: iod}, "iods": {iod: {key: "1"|"2"}}, "any_iod": {key: ...}}``
where ``key`` is ``"GGGGEEEE"`` for a top-level attribute or ``"PPPPPPPP/GGGGEEEE"`` for one inside items of
sequence ``PPPPPPPP``. Type 3 (and attributes the IOD does not have) are absent: those are removed. Conditional
types count as their base type (an attribute present in an instance is there because its condition holds).
``any_iod`` is the strictest Type over all IODs, for SOP classes the table does not know.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from tasks.deid.profile import TABLE_FILE

OUTPUT = Path(__file__).with_name("iod_types.json")
SOURCE = (
    "innolitics/dicom-standard (MIT), PyPI dicom-standard 0.1.0: PS3.3 module tables parsed from the standard "
    "published on dicom.nema.org on 2020-04-13 (git blob dae8d99c of standard/module_to_attributes.json)"
)
RELEASE = "DICOM PS3.3 as published on 2020-04-13 (release 2020a or 2020b; the parser does not record which)"
COMPOUND_CODES = frozenset({"X/Z", "X/D", "Z/D", "X/Z/D"})
CONTENT_SEQUENCE = "0040A730"  # SR content items nest recursively: the root item's attributes apply to every item
SR_CONTENT_MODULE = "sr-document-content"
FUNCTIONAL_GROUP_SEQUENCES = ("52009229", "52009230")  # Shared / Per-frame Functional Groups Sequence
INPUTS = (
    "sops.json",
    "ciods.json",
    "ciod_to_modules.json",
    "module_to_attributes.json",
    "ciod_to_fg_macros.json",
    "macro_to_attributes.json",
)


def compound_tags(table: Path = TABLE_FILE) -> set[str]:
    """Tags (8 upper-case hex digits) of the Annex E rows whose basic action depends on the IOD."""
    rows = json.loads(table.read_text())["rows"]
    return {r["tag"].upper() for r in rows if r["basic"] in COMPOUND_CODES}


def _base_type(raw: str) -> str | None:
    raw = (raw or "").strip().upper()
    return raw[0] if raw[:1] in ("1", "2") else None


def _stricter(a: str | None, b: str) -> str:
    return b if a is None or b < a else a  # "1" < "2"


def attribute_types(rows: Iterable[dict], wanted: set[str], in_items_of: tuple[str, ...] = ()) -> dict[str, dict]:
    """``{module or macro id: {key: type}}`` for the ``wanted`` tags of module/macro attribute rows.

    ``in_items_of``: sequences whose items hold the top level of a macro (functional groups).
    """
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for row in rows:
        parts = row["path"].split(":")
        owner, tags = parts[0], [p.upper() for p in parts[1:]]
        kind = _base_type(row.get("type", ""))
        if not tags or tags[-1] not in wanted or kind is None:
            continue
        parents = [tags[-2]] if len(tags) > 1 else (list(in_items_of) or [None])
        if owner == SR_CONTENT_MODULE and len(tags) == 1:
            parents = [None, CONTENT_SEQUENCE]
        for parent in parents:
            key = tags[-1] if parent is None else f"{parent}/{tags[-1]}"
            out[owner][key] = _stricter(out[owner].get(key), kind)
    return out


def build(source: Path, table: Path = TABLE_FILE) -> dict:
    """The compact table from the innolitics JSON files in ``source``."""
    load = lambda name: json.loads((source / name).read_text())  # noqa: E731
    wanted = compound_tags(table)
    ciod_ids = {c["name"]: c["id"] for c in load("ciods.json")}
    sop_classes = {s["id"]: ciod_ids[s["ciod"]] for s in load("sops.json")}
    modules = attribute_types(load("module_to_attributes.json"), wanted)
    macros = attribute_types(load("macro_to_attributes.json"), wanted, FUNCTIONAL_GROUP_SEQUENCES)
    parts: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for row in load("ciod_to_modules.json"):
        parts[row["ciodId"]].add(("module", row["moduleId"]))
    for row in load("ciod_to_fg_macros.json"):
        parts[row["ciodId"]].add(("macro", row["macroId"]))
    iods: dict[str, dict[str, str]] = {}
    strictest: dict[str, str] = {}
    for iod in sorted(set(sop_classes.values())):
        types: dict[str, str] = {}
        for kind, name in parts.get(iod, ()):
            for key, t in (modules if kind == "module" else macros).get(name, {}).items():
                types[key] = _stricter(types.get(key), t)
                strictest[key] = _stricter(strictest.get(key), t)
        iods[iod] = dict(sorted(types.items()))
    digests = {name: hashlib.sha256((source / name).read_bytes()).hexdigest() for name in INPUTS}
    return {
        "source": SOURCE,
        "release": RELEASE,
        "inputs_sha256": digests,
        "sop_classes": dict(sorted(sop_classes.items())),
        "iods": iods,
        "any_iod": dict(sorted(strictest.items())),
    }


def generate(source: Path, output: Path = OUTPUT) -> int:
    """Write the table; return the number of SOP classes."""
    doc = build(source)
    output.write_text(json.dumps(doc, indent=0, sort_keys=False) + "\n")
    return len(doc["sop_classes"])


if __name__ == "__main__":
    n = generate(Path(sys.argv[1]))
    print(f"wrote {n} SOP classes to {OUTPUT}")
