"""PHI leak audit: search everything a run produced for the identifying values of its originals.

Public interface: :func:`audit_dataset` (returns an :class:`AuditReport`; ``report.ok`` is False on any
finding), :func:`collect_patterns`, :class:`Matcher`; the Prefect task ``tasks.audit.task.audit_task`` for the
end of an ingest run. CLI: ``medflow audit DATASET --originals SOURCE``.
"""

from tasks.audit.collect import PatternSet, collect_patterns
from tasks.audit.report import AuditReport, Finding
from tasks.audit.run import audit_dataset
from tasks.audit.search import Matcher

__all__ = ["AuditReport", "Finding", "Matcher", "PatternSet", "audit_dataset", "collect_patterns"]
