"""Synthetic identities and outcomes: real-looking PHI that belongs to nobody, drawn from a seeded RNG."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

FAMILY = [
    "Smith",
    "Johnson",
    "Garcia",
    "Miller",
    "Davis",
    "Martinez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Hill",
    "Green",
    "Adams",
    "Baker",
    "Nelson",
    "Carter",
    "Mitchell",
]
GIVEN_F = [
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Nancy",
    "Lisa",
    "Margaret",
    "Sandra",
    "Ashley",
    "Emily",
    "Donna",
]
GIVEN_M = [
    "James",
    "Robert",
    "John",
    "Michael",
    "David",
    "William",
    "Richard",
    "Joseph",
    "Thomas",
    "Charles",
    "Daniel",
    "Matthew",
    "Anthony",
    "Mark",
    "Paul",
    "Steven",
]
INSTITUTIONS = ["St. Synthetic General Hospital", "Synthetic University Medical Center", "Phantom Valley Clinic"]
PHYSICIANS = ["Okafor^Grace", "Novak^Peter", "Tanaka^Hiro", "Schmidt^Anna", "Rossi^Marco"]
#: Operators (technologists): person names like the other synthetic PHI, never words of retained attributes
#: (Manufacturer ``medflow-synthetic`` etc.), so the PHI audit's name-part search cannot hit retained values.
OPERATORS = ["Lindqvist^Tove", "Okonkwo^Emeka", "Halvorsen^Ingrid", "Brennan^Declan"]
GROUPS = ["site-a", "site-b"]

# Outcome model: exponential event times, log-hazard linear in EF and age (a known ground truth).
BASE_HAZARD_PER_DAY = 1.0 / 1800.0
BETA_EF = -0.12  # per EF percentage point above 55
BETA_AGE = 0.04  # per year above 65
MAX_FOLLOWUP_DAYS = 3650


@dataclass(frozen=True)
class Patient:
    """One synthetic patient: identity (PHI), clinical truth, and outcome."""

    name: str  # DICOM PN, Family^Given
    mrn: str
    birth_date: dt.date
    sex: str  # "M" | "F"
    age: int
    group: str
    institution: str
    physician: str
    study_date: dt.date
    study_time: str
    accession: str
    ef: float
    followup_date: dt.date
    event: int


def draw_patient(rng: np.random.Generator, index: int) -> Patient:
    """Draw one patient; ``index`` only makes the MRN unique."""
    sex = "F" if rng.random() < 0.45 else "M"
    given = rng.choice(GIVEN_F if sex == "F" else GIVEN_M)
    family = rng.choice(FAMILY)
    age = int(np.clip(rng.normal(64, 12), 25, 92))
    group = str(rng.choice(GROUPS))
    # EF: a mix of normal and reduced function; site-b sees somewhat sicker patients
    ef = float(np.clip(rng.normal(52 if group == "site-a" else 45, 12), 15, 78))
    study_date = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 8 * 365)))
    birth_date = study_date - dt.timedelta(days=int(age * 365.25 + rng.integers(0, 365)))
    log_hr = BETA_EF * (ef - 55.0) + BETA_AGE * (age - 65.0)
    event_days = rng.exponential(1.0 / (BASE_HAZARD_PER_DAY * np.exp(log_hr)))
    censor_days = rng.uniform(180, MAX_FOLLOWUP_DAYS)
    days = max(1, round(min(event_days, censor_days)))
    return Patient(
        name=f"{family}^{given}",
        mrn=f"{rng.integers(10_000_000, 99_999_999)}{index % 10}",
        birth_date=birth_date,
        sex=sex,
        age=age,
        group=group,
        institution=str(rng.choice(INSTITUTIONS)),
        physician=str(rng.choice(PHYSICIANS)),
        study_date=study_date,
        study_time=f"{rng.integers(7, 18):02d}{rng.integers(0, 60):02d}{rng.integers(0, 60):02d}",
        accession=f"ACC{rng.integers(1_000_000, 9_999_999)}",
        ef=round(ef, 1),
        followup_date=study_date + dt.timedelta(days=days),
        event=int(event_days <= censor_days),
    )
