"""The words medflow and its libraries write themselves: reason codes, status words, keys, column names, messages.

Built from the code and the libraries, not kept by hand:

* medflow's own words: every string constant in the packages ``tasks``, ``flows`` and ``models`` (messages,
  reason codes, status words, JSON keys, column names, enum values; docstrings excepted, but the audit's
  pattern rule, which every report carries) and every class-level field name (dataclass fields become JSON
  keys). The modules that generate synthetic PHI for the demo and tests (:data:`SYNTHETIC_PHI`) are left out:
  their strings are made-up names, not vocabulary; so are, here and in the libraries, literal tables of more
  than :data:`TABLE_SIZE` strings (Prefect's list of time zones holds "St_Thomas" and "Davis");
* the DICOM attribute keywords (pydicom's dictionary), which findings and messages cite;
* what zarr and pyarrow/pandas write into metadata, read from a tiny array and table written by them here;
* for the Prefect database: Prefect's string constants, field names, templates and state types, and the
  database's own schema; for the files Great Expectations writes (``qc/gx``): its constants, field names,
  templates and assets. Both are generated into ``library_words.json`` for the installed versions by
  ``python -m tasks.audit.vocabulary`` (reading a library's hundreds of modules takes seconds); another
  version is read live.

See :mod:`tasks.audit.run` for where vocabulary words are and are not findings.
"""

from __future__ import annotations

import ast
import functools
import io
import json
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path

#: Packages whose strings are medflow's vocabulary, relative to the folder holding them.
PACKAGES = ("tasks", "flows", "models")
#: Generators of made-up PHI (demo cohort, labelled OCR sets): their strings are names, not vocabulary.
SYNTHETIC_PHI = ("tasks/synth", "tasks/pixels/synthetic.py")
_TOKEN = re.compile(r"[^\W_]+")
TABLE_SIZE = 32


def tokens(text: str) -> list[str]:
    """Case-folded runs of letters and digits (any script)."""
    return _TOKEN.findall(text.casefold())


def is_vocabulary(pattern: str, words: frozenset[str]) -> bool:
    """Whether every word of ``pattern`` is a vocabulary word (a pattern without words is not)."""
    found = tokens(pattern)
    return bool(found) and all(t in words for t in found)


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, kinds) and node.body and isinstance(node.body[0], ast.Expr):
            value = node.body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(id(value))
    return found


def _tables(tree: ast.AST) -> set[int]:
    """String constants inside literal collections of more than :data:`TABLE_SIZE` strings: data tables (time
    zones, country names, made-up names), not words a program writes about itself."""
    found = set()
    for node in ast.walk(tree):
        items = node.elts if isinstance(node, (ast.List, ast.Tuple, ast.Set)) else None
        if isinstance(node, ast.Dict):
            items = [*node.keys, *node.values]
        strings = [i for i in items or () if isinstance(i, ast.Constant) and isinstance(i.value, str)]
        if len(strings) > TABLE_SIZE:
            found.update(id(i) for i in strings)
    return found


def source_words(files: Iterable[Path]) -> set[str]:
    """Words of the string constants (not docstrings, not data tables) and class-level field names of ``files``."""
    words: set[str] = set()
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError, OSError):
            continue
        skip = _docstrings(tree) | _tables(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                words.update(tokens(node.value))
            elif isinstance(node, ast.ClassDef):
                for statement in node.body:
                    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                        words.update(tokens(statement.target.id))
    return words


def _project_files() -> list[Path]:
    root = Path(__file__).resolve().parents[2]
    files = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if not any(rel == s or rel.startswith(s + "/") for s in SYNTHETIC_PHI):
                files.append(path)
    return files


def _library_metadata_words() -> set[str]:
    """Words zarr and pyarrow/pandas write into the metadata of an array and a table (written here, in memory)."""
    import tempfile

    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    import zarr
    from zarr.codecs import ZstdCodec

    with tempfile.TemporaryDirectory() as tmp:
        group = zarr.open_group(tmp, mode="w", zarr_format=3)
        group.attrs["a"] = 1
        for dtype in ("uint8", "int16", "float32"):
            group.create_array(dtype, shape=(4, 4), chunks=(2, 2), shards=(4, 4), dtype=dtype, compressors=ZstdCodec())
        text = " ".join(p.read_text() for p in Path(tmp).rglob("zarr.json"))
    frame = pd.DataFrame({"o": ["a"], "f": [1.0], "i": [np.int64(1)], "b": [True], "t": [pd.Timestamp(0)], "n": [None]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    schema = pq.ParquetFile(io.BytesIO(buffer.getvalue())).schema_arrow
    meta = " ".join(k.decode() + " " + v.decode() for k, v in (schema.metadata or {}).items())
    return set(tokens(text + " " + str(schema) + " " + meta))


@functools.cache
def project_vocabulary() -> frozenset[str]:
    """medflow's words, DICOM keywords, and the metadata words of zarr and pyarrow (see the module docstring)."""
    from pydicom.datadict import keyword_dict

    from tasks.audit import values

    words = source_words(_project_files())
    words.update(tokens(values.__doc__ or ""))  # the pattern rule, written into every audit report
    words.update(k.casefold() for k in keyword_dict)
    words.update(_library_metadata_words())
    return frozenset(words)


LIBRARY_WORDS = Path(__file__).with_name("library_words.json")
#: Libraries whose own words sit beside ours: Prefect (its database), Great Expectations (``qc/gx``); True where
#: the library renders pages from its template and asset files (Prefect's UI bundle never reaches its database).
LIBRARIES = {"prefect": False, "great_expectations": True}
#: Template and asset files of a library whose words it writes (Data Docs pages are rendered from them).
_TEXT_SUFFIXES = frozenset({".j2", ".html", ".js", ".css", ".yml", ".yaml", ".json", ".md", ".txt"})


def read_library_words(name: str) -> frozenset[str]:
    """Words library ``name`` writes: its string constants and field names, its templates and assets' words,
    and for Prefect its state types. Reads hundreds of modules: seconds."""
    import importlib

    root = Path(importlib.import_module(name).__file__).parent
    words = source_words(sorted(root.rglob("*.py")))
    for path in sorted(root.rglob("*")) if LIBRARIES[name] else ():
        if path.suffix in _TEXT_SUFFIXES and path.is_file():
            words.update(tokens(path.read_text(encoding="utf-8", errors="replace")))
    if name == "prefect":
        from prefect.client.schemas.objects import StateType

        words.update(tokens(" ".join(s.value for s in StateType)))
    return frozenset(words)


@functools.cache
def library_words(name: str) -> frozenset[str]:
    """:func:`read_library_words`, from ``library_words.json`` when generated for the installed version."""
    from importlib.metadata import version

    installed = version(name)
    try:
        doc = json.loads(LIBRARY_WORDS.read_text())[name]
        if doc.get("version") == installed:
            return frozenset(doc["words"])
    except (OSError, ValueError, KeyError):
        pass
    return read_library_words(name)


def database_schema_words(database: Path) -> set[str]:
    """Words of a SQLite database's own schema (table, column and index definitions), read read-only."""
    try:
        uri = Path(database).resolve().as_uri() + "?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=5) as db:
            rows = db.execute("select name, sql from sqlite_master").fetchall()
    except sqlite3.Error:
        return set()
    return set(tokens(json.dumps(rows)))


def main() -> None:
    """Regenerate ``library_words.json`` for the installed libraries."""
    from importlib.metadata import version

    doc = {name: {"version": version(name), "words": sorted(read_library_words(name))} for name in LIBRARIES}
    LIBRARY_WORDS.write_text(json.dumps(doc, indent=0, sort_keys=True) + "\n")
    for name in LIBRARIES:
        print(f"{LIBRARY_WORDS.name}: {len(doc[name]['words'])} words of {name} {doc[name]['version']}")


if __name__ == "__main__":
    main()
