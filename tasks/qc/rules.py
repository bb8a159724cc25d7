"""What a good manifest row looks like, as configuration (thresholds and sets), independent of GX."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MODALITIES = frozenset(
    {"US", "CT", "MR", "XA", "XC", "ES", "OT", "SC", "CR", "DX", "MG", "NM", "PT", "RF", "IVUS", "OP", "GM"}
)
PSEUDONYM_UID = r"^2\.25\.\d{1,62}$"


@dataclass(frozen=True)
class QcRules:
    """Thresholds of the per-modality suites and the share of failing rows that fails the flow."""

    modalities: frozenset[str] = DEFAULT_MODALITIES
    fps_min: float = 10.0
    fps_max: float = 250.0
    min_frames: int = 16
    earliest_date: str = "1900-01-01"
    latest_date: str = "2100-12-31"  # shifted dates may move into the future by the offset range
    max_failure_share: float = 0.25
    patient_id_regex: str = r"^[A-Za-z0-9._-]{6,64}$"
    uid_regex: str = PSEUDONYM_UID
    required: tuple[str, ...] = field(
        default=("instance_id", "patient_id", "study_id", "series_id", "modality", "kind", "zarr_key", "frames")
    )
