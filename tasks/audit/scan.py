"""Scan every file of a dataset for the patterns, each in the way its format needs.

* DICOM: the file bytes with the pixel data blanked (pixels are OCR's business), and every decoded element
  value; plus structural checks (PatientIdentityRemoved, pseudonymous ``2.25.`` UIDs).
* Zarr stores: metadata documents only (``zarr.json``, v2 ``.zattrs``/``.zarray``/``.zgroup``); chunks are
  pixel data. Attribute values are data; keys and zarr's own metadata (shape, codecs) are code's words.
* Parquet: the schema/key-value metadata (code's words) and the text of every cell (data), per column.
* JSON and JSON Lines: object keys (code's words) apart from values (data); a line that does not parse is text.
* Text (html, yaml, logs, ...): the bytes as UTF-8, Latin-1 and UTF-16-LE. HTML pages (Data
  Docs render validation results, and so our values) are scanned whole, scripts included, except their CSS
  (``<style>`` blocks and ``style="..."`` attributes): styling never carries our values, and its colour words
  (``white``, ``green``) are also surnames.
* Vendored static assets of the Great Expectations Data Docs theme (css, js, fonts, images under
  ``qc/gx/**/static/``) are skipped: they are copied from the library, never rendered from our data.
* Any other binary file: the same three decodings, with patterns of 8 characters or more only (shorter ones
  match random binary content too often to mean anything).

Each scanner takes a :class:`Search`: the matcher for data, the one for places only code writes (``words``:
vocabulary patterns left out) and the whole-word matchers of short names for text.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tasks.audit.report import Finding
from tasks.audit.search import Matcher
from tasks.audit.table import AnnexTable

CHUNK = 16 << 20
BINARY_MIN_LENGTH = 8
ZARR_METADATA = frozenset({"zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata"})
_TEXT_SUFFIXES = ".json .jsonl .ndjson .html .htm .yaml .yml .log .txt .csv .tsv .md .xml .toml .ini .cfg .out .err"
TEXT_SUFFIXES = frozenset(_TEXT_SUFFIXES.split())
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
HTML_SUFFIXES = frozenset({".html", ".htm"})
MAX_HTML_BYTES = 64 << 20  # larger pages are scanned whole, CSS included
_CSS = re.compile(rb"""<style\b[^>]*>.*?</style\s*>|\bstyle\s*=\s*(?:"[^"]*"|'[^']*')""", re.IGNORECASE | re.DOTALL)
#: Suffixes of the Data Docs theme's vendored files (under ``static/`` of the ``qc/gx`` tree).
STATIC_ASSET_SUFFIXES = frozenset(
    [".css", ".js", ".map", ".svg", ".png", ".jpg", ".jpeg", ".gif", ".ico", ".woff", ".woff2", ".ttf", ".otf", ".eot"]
)

Labeler = Callable[[str], tuple[str, ...]]
Hits = dict[str, Counter[str]]
JSON_SUFFIXES = frozenset({".json"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
_TAGS = re.compile(r"<script\b.*?</script\s*>|<style\b.*?</style\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Search:
    """Matchers for one kind of output: ``data`` for values, ``words`` for places only code writes (keys,
    schemas, library metadata), and their whole-word short-name counterparts for text."""

    data: Matcher
    words: Matcher
    short_data: Matcher
    short_words: Matcher

    def data_text(self, text: str) -> Counter[str]:
        return self.data.find(text) + self.short_data.find(text)

    def words_text(self, text: str) -> Counter[str]:
        return self.words.find(text) + self.short_words.find(text)


def _merge(into: Hits, more: Hits) -> Hits:
    for encoding, counter in more.items():
        if counter:
            into.setdefault(encoding, Counter()).update(counter)
    return into


def _findings(relpath: str, where: str, hits: dict[str, Counter[str]], labels: Labeler) -> list[Finding]:
    """One finding per attribute label set; encodings that saw the same hits are listed together."""
    per_encoding: dict[tuple[str, ...], dict[str, int]] = {}
    for encoding, counter in hits.items():
        for pattern, n in counter.items():
            counts = per_encoding.setdefault(labels(pattern), {})
            counts[encoding] = counts.get(encoding, 0) + n
    return [
        Finding(relpath, where, attrs, "value", ",".join(sorted(counts)), max(counts.values()))
        for attrs, counts in sorted(per_encoding.items())
    ]


def read_chunks(path: Path, overlap: int) -> Iterator[bytes]:
    """File content in chunks that overlap by ``overlap`` bytes, so no hit is cut in two."""
    with path.open("rb") as fh:
        tail = b""
        while True:
            block = fh.read(CHUNK)
            if not block:
                return
            yield tail + block
            tail = block[-overlap:] if overlap else b""


def scan_bytes_file(path: Path, matcher: Matcher) -> dict[str, Counter[str]]:
    """Hits of ``matcher`` in the file content, in every encoding, read in overlapping chunks."""
    total: dict[str, Counter[str]] = {}
    overlap = 4 * matcher.max_length + 4
    for chunk in read_chunks(path, overlap):
        for enc, hits in matcher.find_bytes(chunk).items():
            total.setdefault(enc, Counter()).update(hits)
    # hits fully inside an overlap are counted twice; counts are indicative, presence is what matters
    return total


def strip_css(data: bytes) -> bytes:
    """An HTML page with its ``<style>`` blocks and ``style`` attribute values blanked (ASCII-compatible only)."""
    return _CSS.sub(b" ", data)


def scan_html_file(path: Path, search: Search) -> Hits:
    """Hits in an HTML page outside its CSS, in every encoding (a very large page is scanned whole); short names
    in its text without tags and scripts (``<li>`` is no name)."""
    if path.stat().st_size > MAX_HTML_BYTES:
        return scan_bytes_file(path, search.data)
    data = strip_css(path.read_bytes())
    hits = search.data.find_bytes(data)
    text = _TAGS.sub(" ", data.decode("utf-8", errors="replace"))
    return _merge(hits, {"utf-8": search.short_data.find(text)})


def scan_text_file(path: Path, search: Search, *, code_only: bool = False) -> Hits:
    """A text file in every encoding, short names included; ``code_only``: a file only code writes words into."""
    matcher, short = (search.words, search.short_words) if code_only else (search.data, search.short_data)
    return _merge(scan_bytes_file(path, matcher), scan_bytes_file(path, short))


def json_parts(doc: object, *, zarr_meta: bool = False) -> tuple[list[str], list[str]]:
    """(code's words, data) of a parsed JSON document: object keys are code's words, values are data; in zarr
    metadata only what sits under an ``attributes`` key is data (the rest is zarr's own: shape, codecs)."""
    words: list[str] = []
    data: list[str] = []
    stack: list[tuple[object, bool]] = [(doc, not zarr_meta)]
    while stack:
        node, is_data = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                words.append(str(key))
                stack.append((value, is_data or (zarr_meta and key == "attributes")))
        elif isinstance(node, list):
            stack.extend((item, is_data) for item in node)
        elif node is not None:
            (data if is_data else words).append(str(node))
    return words, data


def scan_json_file(path: Path, search: Search, *, code_only: bool = False, zarr_meta: bool = False) -> Hits | None:
    """Keys and values of a JSON (or JSON Lines) file, apart; None when it does not parse as a whole.

    ``code_only`` (a run log: ids, counts, reason codes) searches values like keys."""
    raw = path.read_bytes()
    lines = raw.splitlines() if path.suffix.lower() in JSONL_SUFFIXES else [raw]
    words: list[str] = []
    data: list[str] = []
    loose: list[str] = []
    for line in lines:
        try:
            doc = json.loads(line) if line.strip() else None
        except ValueError:
            if len(lines) == 1:
                return None
            loose.append(line.decode("utf-8", errors="replace"))  # a line cut by a crash: searched as text
            continue
        w, d = json_parts(doc, zarr_meta=zarr_meta)
        words += w
        data += d
    if code_only:
        words, data = words + data, []
    hits = search.words_text("\n".join(words)) + search.data_text("\n".join(data + loose))
    return {"decoded": hits} if hits else {}


def is_vendored_static(relpath: Path) -> bool:
    """A Data Docs theme file (``qc/gx/**/static/**`` with a css/js/font/image suffix): library code, no data."""
    parts = relpath.parts
    return (
        len(parts) > 3
        and parts[:2] == ("qc", "gx")
        and "static" in parts[2:-1]
        and relpath.suffix.lower() in STATIC_ASSET_SUFFIXES
    )


def is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def _looks_text(path: Path) -> bool:
    if path.suffix.lower() in TEXT_SUFFIXES:
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError:
        return False
    return b"\x00" not in head


def scan_dicom(path: Path, relpath: str, search: Search, table: AnnexTable, labels: Labeler) -> list[Finding]:
    """Header bytes (pixel data blanked), decoded element values, and structural checks of one DICOM file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings can quote a value
        return _scan_dicom(path, relpath, search, table, labels)


def _scan_dicom(path: Path, relpath: str, search: Search, table: AnnexTable, labels: Labeler) -> list[Finding]:
    import pydicom
    from pydicom.uid import UID_dictionary

    findings: list[Finding] = []
    matcher = search.data
    try:
        ds = pydicom.dcmread(path, force=True, defer_size=1024)
    except Exception:
        hits = scan_bytes_file(path, matcher)
        return _findings(relpath, "dicom bytes (unparsable)", hits, labels)
    size = path.stat().st_size
    skip = []  # pixel data byte ranges: OCR's business, and random bytes would match short patterns
    for tag in PIXEL_TAGS:
        raw = ds._dict.get(tag)
        start = getattr(raw, "value_tell", None)
        if start is not None:
            skip.append((start, size if raw.length == 0xFFFFFFFF else min(size, start + raw.length)))
    data = bytearray()
    with path.open("rb") as fh:
        position = 0
        for start, end in sorted(skip):
            data += fh.read(max(0, start - position)) + bytes(8)
            fh.seek(end)
            position = end
        data += fh.read()
    findings += _findings(relpath, "dicom bytes", matcher.find_bytes(bytes(data)), labels)

    element_hits: dict[str, dict[str, Counter[str]]] = {}
    removed = None
    stack = [ds, ds.file_meta] if getattr(ds, "file_meta", None) is not None else [ds]
    while stack:
        current = stack.pop()
        try:
            tags = [t for t in current._dict if int(t) not in PIXEL_TAGS]
            elements = [current[t] for t in tags]  # pixel data is never loaded
        except Exception:
            findings.append(Finding(relpath, "dicom elements (unparsable)", ("cannot be audited",), "structure"))
            continue
        for elem in elements:
            tag = int(elem.tag)
            if elem.VR == "SQ":
                stack.extend(i for i in (elem.value or []) if i is not None)
                continue
            value = elem.value
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            if tag == 0x00120062:
                removed = text.strip().upper()
            hits = search.data_text(text)
            where = f"dicom element ({tag >> 16:04X},{tag & 0xFFFF:04X})"
            if hits:
                element_hits.setdefault(where, {}).setdefault("decoded", Counter()).update(hits)
            row = table.lookup(tag) if not elem.tag.is_private else None
            if row is not None and elem.VR == "UI" and row.options.get("retain-uids") == "K":
                for uid in str(value).split("\\") if value else []:
                    uid = uid.strip("\x00 ")
                    if uid and not uid.startswith("2.25.") and uid not in UID_dictionary:
                        findings.append(Finding(relpath, where, (f"{row.keyword} not pseudonymised",), "structure"))
    for where, hits in sorted(element_hits.items()):
        findings += _findings(relpath, where, hits, labels)
    if removed != "YES":
        where = "dicom element (0012,0062)"
        findings.append(Finding(relpath, where, ("PatientIdentityRemoved is not YES",), "structure"))
    return findings


def scan_parquet(path: Path, relpath: str, search: Search, labels: Labeler) -> list[Finding]:
    """Schema and key-value metadata (code's words), and every cell of a parquet file (data), per column."""
    import pyarrow.parquet as pq

    findings: list[Finding] = []
    pf = pq.ParquetFile(path)
    meta = pf.schema_arrow.metadata or {}
    pairs = (k.decode("latin-1") + " " + v.decode("latin-1") for k, v in meta.items())
    meta_text = str(pf.schema_arrow) + "\n" + "\n".join(pairs)
    findings += _findings(relpath, "parquet schema/metadata", {"decoded": search.words_text(meta_text)}, labels)
    for batch in pf.iter_batches(batch_size=65536):
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            text = "\n".join(str(v) for v in column.to_pylist())
            hits = search.data_text(text)
            if hits:
                findings += _findings(relpath, f"parquet column {name}", {"decoded": hits}, labels)
    return findings


def dataset_files(root: Path) -> Iterator[tuple[Path, str]]:
    """(path, kind) for every file below ``root``.

    kind is unlisted (a folder that cannot be listed: a blind spot, reported)|not-regular|static-asset|dicom|
    zarr-meta|zarr-chunk|parquet|html|text|binary.
    """
    unlisted: list[Path] = []
    for dirpath, dirs, files in os.walk(root, onerror=lambda error: unlisted.append(Path(error.filename))):
        while unlisted:
            yield unlisted.pop(0), "unlisted"
        dirs.sort()
        in_zarr = any(part.endswith(".zarr") for part in Path(dirpath).relative_to(root).parts)
        for name in sorted(files):
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                yield path, "not-regular"
            elif in_zarr or name.endswith(".zarr"):
                yield path, "zarr-meta" if name in ZARR_METADATA else "zarr-chunk"
            elif is_vendored_static(path.relative_to(root)):
                yield path, "static-asset"
            elif name.endswith(".parquet"):
                yield path, "parquet"
            elif is_dicom(path):
                yield path, "dicom"
            elif path.suffix.lower() in HTML_SUFFIXES:
                yield path, "html"
            elif _looks_text(path):
                yield path, "text"
            else:
                yield path, "binary"
    for path in unlisted:
        yield path, "unlisted"
