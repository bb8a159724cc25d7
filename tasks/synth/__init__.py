"""A synthetic, clearly labelled echo cohort (DICOM + outcomes) so the whole pipeline runs offline.

``make_cohort`` writes DICOM and ``outcomes.csv``; ``phantom`` holds the pure image generators;
``views`` writes a contract-shaped training dataset straight from the phantom (tests, benchmarks).
"""

from tasks.synth.cohort import CohortSummary, make_cohort

__all__ = ["CohortSummary", "make_cohort"]
