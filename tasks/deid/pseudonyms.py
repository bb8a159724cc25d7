"""Keyed, stateless pseudonyms: HMAC-SHA256 of the original value under the secret key.

The same input gives the same output in every run, process and machine that holds the key, so
references stay consistent without a lookup table. Each kind of value has its own domain label,
so a PatientID and a UID with equal text never collide.
"""

from __future__ import annotations

import base64
import hmac
from pathlib import Path

from tasks.deid.keys import DeidKey

#: Date offsets lie in [-MAX, -MIN] days: always in the past, never zero, up to ten years.
MIN_OFFSET_DAYS = 365
MAX_OFFSET_DAYS = 3650
#: UIDs remembered per process (study/series UIDs repeat across the instances of a series).
UID_CACHE_SIZE = 200_000


def normalise_uid(uid: str) -> str:
    """A UID as compared for mapping: without the padding (space or NUL) DICOM allows."""
    return uid.strip(" \x00")


class Pseudonymizer:
    """Keyed mappings of UIDs, patient ids, accession numbers, date offsets and source paths."""

    def __init__(self, key: DeidKey):
        self.key = key
        self._uids: dict[str, str] = {}

    def __getstate__(self) -> dict:
        return {"key": self.key}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["key"])

    def __repr__(self) -> str:
        return "Pseudonymizer(<keyed>)"

    def _digest(self, domain: bytes, value: str) -> bytes:
        return hmac.digest(self.key.secret, domain + b"\x00" + value.encode("utf-8", "surrogateescape"), "sha256")

    def uid(self, u: str) -> str:
        """``2.25.<decimal of 128 bits of the HMAC>``: a valid UID of at most 44 characters."""
        cached = self._uids.get(u)
        if cached is None:
            digest = self._digest(b"uid", normalise_uid(u))
            cached = "2.25." + str(int.from_bytes(digest[:16], "big"))
            if len(self._uids) >= UID_CACHE_SIZE:  # bounded memory in long-running workers
                self._uids.clear()
            self._uids[u] = cached
        return cached

    def _token(self, domain: bytes, value: str, length: int = 16) -> str:
        return base64.b32encode(self._digest(domain, value)).decode()[:length]

    def patient_id(self, pid: str) -> str:
        """16 characters from ``A-Z2-7`` (safe as LO value and as a folder name)."""
        return self._token(b"patient-id", pid.strip(" \x00"))

    def accession(self, a: str) -> str:
        """16 characters (fits SH)."""
        return self._token(b"accession", a.strip(" \x00"))

    def other_id(self, value: str) -> str:
        """Pseudonym for other identifiers retained with a cleaning option (e.g. AE titles)."""
        return self._token(b"other-id", value.strip(" \x00"), 12)

    def date_offset_days(self, patient_id: str, fallback_uid: str) -> int:
        """One negative offset per patient (key + original PatientID; the StudyInstanceUID if PatientID is empty)."""
        pid = patient_id.strip(" \x00")
        source = b"patient-date", pid if pid else "study:" + normalise_uid(fallback_uid)
        n = int.from_bytes(self._digest(*source)[:8], "big")
        return -(MIN_OFFSET_DAYS + n % (MAX_OFFSET_DAYS - MIN_OFFSET_DAYS + 1))

    def source_id(self, path: str | Path) -> str:
        """Keyed hash of a source path (32 hex characters) for audit and quarantine rows."""
        return self._digest(b"source", str(path)).hex()[:32]

    def pseudo_patient_id(self, patient_id: str, study_uid: str) -> str:
        """The PatientID an image gets: keyed from PatientID, or from the study UID when PatientID is empty."""
        pid = patient_id.strip(" \x00")
        return self.patient_id(pid) if pid else self.patient_id("study:" + normalise_uid(study_uid))

    @staticmethod
    def dummy_name(pseudo_patient_id: str) -> str:
        """Patient name derived from the pseudonymous id (a valid PN)."""
        return f"ANON^{pseudo_patient_id}"
