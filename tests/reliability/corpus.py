"""Small corpora of real pydicom-data files for the reliability tests, with planted unique PHI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

#: Files copied into a corpus: CT, MR, multi-frame MR, an RT plan (no pixels), an RGB ultrasound.
CORPUS_FILES = ("CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "rtplan.dcm", "US1_UNCR.dcm")


def planted_values(index: int) -> dict[str, str]:
    """Unique values for file ``index``: nothing like them exists anywhere else."""
    tag = "abcdefghij"[index]
    return {
        "PatientName": f"Zyqvarn{tag}^Oblestine{tag}",
        "PatientID": f"MRN{index}8273{index}61",
        "PatientBirthDate": f"19{60 + index}0407",
        "StudyDate": f"2019{index + 1:02d}23",
        "InstitutionName": f"Quillmore Vantage Infirmary {tag}",
        "ReferringPhysicianName": f"Pelthaxe{tag}^Doravin",
        "AccessionNumber": f"ACC77{index}0219",
        "StudyInstanceUID": f"1.2.826.0.1.3680043.8.498.555{index}1919",
        "nested.PatientID": f"OPID552{index}9107",
        "nested.IssuerOfPatientID": f"Brindlewick Registry {tag}",
        "private.LO": f"Xertavian private note {tag}",
    }


def draw_text(rgb: np.ndarray, text: str, y: int = 415) -> None:
    """Burn white text into an empty band of an (H,W,3) frame (below the image), as scanners do."""
    import cv2

    cv2.putText(rgb, text, (24, y), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_AA)


def plant(ds: Dataset, values: dict[str, str]) -> None:
    """Write ``values`` into header attributes, a nested sequence and a private block of ``ds``."""
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "InstitutionName"):
        setattr(ds, keyword, values[keyword])
    ds.ReferringPhysicianName = values["ReferringPhysicianName"]
    ds.AccessionNumber = values["AccessionNumber"]
    ds.StudyInstanceUID = values["StudyInstanceUID"]
    item = Dataset()
    item.PatientID = values["nested.PatientID"]
    item.IssuerOfPatientID = values["nested.IssuerOfPatientID"]
    ds.OtherPatientIDsSequence = Sequence([item])
    block = ds.private_block(0x0029, "MEDFLOW RELIABILITY", create=True)
    block.add_new(0x01, "LO", values["private.LO"])


def build_corpus(
    dest: Path, files: tuple[str, ...] = CORPUS_FILES, *, burn_in: bool = True
) -> dict[str, dict[str, str]]:
    """Copy ``files`` into ``dest`` with planted values; return relative path -> planted values.

    Each file lies in a folder named after its planted PatientID, under a name built from its patient's
    name (``folder`` and ``filename`` entries), as exported studies often do: paths are PHI too.

    The single-frame RGB ultrasound file also gets its patient name drawn into its pixels (outside the scan
    region), recorded as ``burned-in``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    planted: dict[str, dict[str, str]] = {}
    for index, name in enumerate(files):
        ds = pydicom.dcmread(get_testdata_file(name))
        values = planted_values(index)
        plant(ds, values)
        if burn_in and ds.get("Modality") == "US" and ds.get("SamplesPerPixel") == 3 and "NumberOfFrames" not in ds:
            pixels = ds.pixel_array.copy()
            burned_in = values["PatientName"].replace("^", " ").upper()  # as scanners print it
            draw_text(pixels, burned_in)
            ds.PixelData = pixels.tobytes()
            ds.PhotometricInterpretation = "RGB"
            values["burned-in"] = burned_in
        folder = f"MRNDIR{index}5517{index}"
        filename = values["PatientName"].replace("^", "_") + ".dcm"
        values["folder"], values["filename"] = folder, filename.removesuffix(".dcm")
        (dest / folder).mkdir(exist_ok=True)
        ds.save_as(dest / folder / filename)
        planted[f"{folder}/{filename}"] = values
    return planted


def replicate(source: Path, dest: Path, copies: int) -> int:
    """Write ``copies`` of every file in ``source`` into ``dest`` with fresh UIDs; return files written."""
    files = sorted(p for p in source.iterdir() if p.is_file())
    dest.mkdir(parents=True, exist_ok=True)
    written = 0
    for i in range(copies):
        for path in files:
            ds = pydicom.dcmread(path)
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            if i % 4 == 0 or "SeriesInstanceUID" not in ds:
                ds.SeriesInstanceUID = generate_uid()
            ds.save_as(dest / f"{i:05d}-{path.name}")
            written += 1
    return written


def copy_real(dest: Path, names: tuple[str, ...] = CORPUS_FILES) -> list[Path]:
    """Plain copies of real files (no planting)."""
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(get_testdata_file(n), dest / n)) for n in names]


#: A fixed test key (hex, 32 bytes): pseudonyms and date offsets are the same in every run, so a test that
#: passes once passes always.
TEST_KEY = "5f0c7e21a9d34b68c1f2e3a4b5c6d7e8f9a0b1c2d3e4f5061728394a5b6c7d8e"


def write_key(path: Path, key: str = TEST_KEY) -> Path:
    """Write ``key`` to ``path`` with mode 0600 (a group/world-readable key file is refused)."""
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.chmod(path, 0o600)
    return path


PLANTED_VR = {"PatientName": "PN", "ReferringPhysicianName": "PN", "PatientBirthDate": "DA", "StudyDate": "DA"}


def planted_patterns(planted: dict[str, dict[str, str]], extra: dict[str, str] | None = None):
    """A PatternSet of every planted value with its variants (name orders, date formats), labelled by key."""
    from tasks.audit import PatternSet
    from tasks.audit.values import normalise, variants

    patterns = PatternSet()
    for values in planted.values():
        for key, value in values.items():
            found = variants(value, PLANTED_VR.get(key, "UI" if key.endswith("UID") else "LO"))
            for pattern in found | {normalise(value)}:
                patterns.add(pattern, key)
    for key, value in (extra or {}).items():
        patterns.add(normalise(value), key)
    return patterns


def add_key_patterns(patterns, key_hex: str = TEST_KEY):
    """Add the key as hex and as its raw bytes (what a pickle or a binary dump would hold) to ``patterns``."""
    from tasks.audit.values import normalise

    patterns.add(normalise(key_hex), "deid-key (hex)")
    patterns.add(bytes.fromhex(key_hex).decode("latin-1").casefold(), "deid-key (bytes)")
    return patterns


def raw_search(roots: list[Path], patterns) -> list[tuple[str, tuple[str, ...]]]:
    """Every file below ``roots`` searched as bytes (UTF-8, Latin-1, UTF-16-LE; parquet cells decoded).

    Returns (path, planted keys) per file with a hit; the planted values are long and unique, so every
    hit is a leak.
    """
    from tasks.audit import Matcher
    from tasks.audit.scan import Search, scan_bytes_file, scan_parquet

    matcher = Matcher(patterns.labels)
    search = Search(matcher, matcher, Matcher([]), Matcher([]))  # every pattern, schema and cells alike
    leaks = []
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            found = set()
            for hits in scan_bytes_file(path, matcher).values():
                found |= {label for pattern in hits for label in patterns.labels[pattern]}
            if path.suffix == ".parquet":
                for finding in scan_parquet(path, str(path), search, lambda p: tuple(patterns.labels[p])):
                    found |= set(finding.attributes)
            if found:
                leaks.append((str(path), tuple(sorted(found))))
    return leaks


def text_search(text: str, patterns) -> set[str]:
    """Planted keys whose values occur in ``text`` (console output)."""
    from tasks.audit import Matcher

    return {label for p in Matcher(patterns.labels).find(text) for label in patterns.labels[p]}
