"""De-identification options of PS3.15 Annex E that medflow implements, and their CID 7050 codes."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from tasks.errors import ConfigError


class DeidOption(StrEnum):
    """An Annex E profile option (value = the name used on the command line and in ``annex_e.json``)."""

    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain-longitudinal-modified-dates"
    RETAIN_LONGITUDINAL_FULL_DATES = "retain-longitudinal-full-dates"
    RETAIN_PATIENT_CHARACTERISTICS = "retain-patient-characteristics"
    CLEAN_DESCRIPTORS = "clean-descriptors"
    RETAIN_DEVICE_IDENTITY = "retain-device-identity"
    RETAIN_INSTITUTION_IDENTITY = "retain-institution-identity"
    RETAIN_SAFE_PRIVATE = "retain-safe-private"
    RETAIN_UIDS = "retain-uids"
    #: medflow's own option (not in Annex E, no CID 7050 code): keep attributes the data dictionary does not know
    RETAIN_UNKNOWN_ATTRIBUTES = "retain-unknown-attributes"


#: On unless the caller starts from an empty set: survival needs intervals, fairness needs age and sex.
DEFAULT_OPTIONS: frozenset[DeidOption] = frozenset(
    {DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES, DeidOption.RETAIN_PATIENT_CHARACTERISTICS}
)

#: CID 7050 "De-identification Method" code value and meaning of each option.
OPTION_CODES: dict[DeidOption, tuple[str, str]] = {
    DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    DeidOption.RETAIN_LONGITUDINAL_FULL_DATES: ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    DeidOption.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    DeidOption.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    DeidOption.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    DeidOption.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
    DeidOption.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    DeidOption.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
}
#: Options outside Annex E, named in DeidentificationMethod (0012,0063) instead of the code sequence.
MEDFLOW_OPTION_METHODS: dict[DeidOption, str] = {
    DeidOption.RETAIN_UNKNOWN_ATTRIBUTES: "MEDFLOW RETAIN UNKNOWN ATTRIBUTES",
}
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")


def parse_options(names: Iterable[str], *, defaults: bool = True) -> frozenset[DeidOption]:
    """Options from command-line names, on top of :data:`DEFAULT_OPTIONS` when ``defaults``.

    Full dates replace modified dates (the two are exclusive in the standard).
    """
    chosen = set(DEFAULT_OPTIONS if defaults else ())
    for name in names:
        try:
            chosen.add(DeidOption(name.strip().lower()))
        except ValueError:
            valid = ", ".join(o.value for o in DeidOption)
            raise ConfigError(f"unknown de-identification option {name!r}; choose from: {valid}") from None
    return normalise_options(chosen)


def normalise_options(options: Iterable[DeidOption | str]) -> frozenset[DeidOption]:
    """Options as a frozenset; full dates replace modified dates (the two are exclusive in the standard)."""
    chosen = {DeidOption(o) for o in options}
    if DeidOption.RETAIN_LONGITUDINAL_FULL_DATES in chosen:
        chosen.discard(DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES)
    return frozenset(chosen)
