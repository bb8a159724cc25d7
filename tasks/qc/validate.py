"""Run the suites over the manifest with a file GX context in ``DATASET/qc``; mark failing rows.

Data Docs (HTML) are rebuilt at ``DATASET/qc/gx/uncommitted/data_docs/local_site/index.html``; a compact
JSON summary of every run goes to ``DATASET/qc/results-<run-id>.json``.

QC fails closed: a row passes only when every expectation of its suite ran and found nothing wrong with it.
An expectation that raised (Great Expectations records the exception, for the expectation or for one of its
metrics) or that returned no result fails every row of its group as ``<expectation>:error``; a failed
expectation that names no rows (a table-level check) fails every row of its group.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.atomic import atomic_write_bytes
from tasks.qc.rules import QcRules
from tasks.qc.suites import SUITE_GROUPS, build_suite, suite_group

log = logging.getLogger(__name__)

QC_DIR = "qc"
DOCS_INDEX = Path("gx/uncommitted/data_docs/local_site/index.html")


@dataclass
class QcSummary:
    """Counts per suite and expectation; ``failure_share`` over all rows; where the docs are."""

    rows: int = 0
    failed_rows: int = 0
    failure_share: float = 0.0
    by_expectation: dict[str, int] = field(default_factory=dict)
    suites: dict[str, dict[str, Any]] = field(default_factory=dict)
    docs_index: str | None = None
    exceeded: bool = False
    errors: list[str] = field(default_factory=list)  # expectations that raised or gave no result


def _expectation_name(config: Any) -> str:
    column = config.kwargs.get("column")
    return f"{config.type}:{column}" if column else str(config.type)


def raised(result: Any) -> bool:
    """Whether a validation result records an exception, for the expectation or for any of its metrics."""
    info = result.exception_info or {}
    if _truthy(info.get("raised_exception")):
        return True
    return any(isinstance(v, dict) and _truthy(v.get("raised_exception")) for v in info.values())


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"


def failing_positions(results: list[Any], expected: list[str], rows: int) -> tuple[dict[str, list[int]], list[str]]:
    """(expectation name -> failing row positions, names of expectations that errored) for one group, failing
    closed (see the module docstring). ``expected``: the names of the suite's expectations."""
    every = list(range(rows))
    failing: dict[str, list[int]] = {}
    errors: list[str] = []
    seen: set[str] = set()
    for r in results:
        name = _expectation_name(r.expectation_config)
        seen.add(name)
        if raised(r):
            errors.append(f"{name}:error")
            failing[f"{name}:error"] = every
            continue
        bad = [int(i) for i in (r.result or {}).get("unexpected_index_list") or []]
        if not r.success and not bad:
            bad = every  # a table-level failure marks every row of the group
        if bad:
            failing[name] = bad
    for name in expected:
        if name not in seen:  # Great Expectations dropped it: it did not run
            errors.append(f"{name}:error")
            failing[f"{name}:error"] = every
    return failing, errors


def _frame_for_gx(manifest: pd.DataFrame) -> pd.DataFrame:
    frame = manifest.reset_index(drop=True).copy()
    frame["study_datetime"] = pd.to_datetime(frame.get("study_date"), errors="coerce")
    return frame


def run_qc(manifest: pd.DataFrame, dataset: Path, rules: QcRules, run_id: str) -> tuple[pd.DataFrame, QcSummary]:
    """Validate ``manifest`` per suite group; return it with ``qc_status``/``qc_failures`` set, and a summary."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    qc_dir = Path(dataset) / QC_DIR
    qc_dir.mkdir(parents=True, exist_ok=True)
    frame = _frame_for_gx(manifest)
    failures: list[list[str]] = [[] for _ in range(len(frame))]
    summary = QcSummary(rows=len(frame))
    if len(frame):
        context = gx.get_context(mode="file", project_root_dir=str(qc_dir))
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        if "manifest" in context.data_sources.all():
            context.data_sources.delete("manifest")
        source = context.data_sources.add_pandas("manifest")
        groups = frame.apply(lambda r: suite_group(str(r["modality"]), str(r["kind"])), axis=1)
        for group in SUITE_GROUPS:
            rows = frame[groups == group]
            if rows.empty:
                continue
            suite = build_suite(group, rules)
            expected = [_expectation_name(e.configuration) for e in suite.expectations]
            result = _validate_group(context, source, group, rows.reset_index(drop=True), suite)
            positions = rows.index.to_numpy()
            failing, errors = failing_positions(list(result.results), expected, len(rows))
            counts: dict[str, int] = {}
            for name, bad in failing.items():
                for idx in bad:
                    failures[int(positions[idx])].append(name)
                counts[name] = len(bad)
                summary.by_expectation[name] = summary.by_expectation.get(name, 0) + len(bad)
            summary.errors += errors
            success = bool(result.success) and not failing
            summary.suites[group] = {"rows": len(rows), "success": success, "failures": counts, "errors": errors}
        context.build_data_docs()
        summary.docs_index = str(qc_dir / DOCS_INDEX)
    out = manifest.reset_index(drop=True).copy()
    out["qc_failures"] = [",".join(sorted(set(f))) for f in failures]
    out["qc_status"] = ["fail" if f else "pass" for f in failures]
    summary.failed_rows = int((out["qc_status"] == "fail").sum())
    summary.failure_share = summary.failed_rows / len(out) if len(out) else 0.0
    summary.exceeded = summary.failure_share > rules.max_failure_share
    payload = json.dumps({"run_id": run_id, **summary.__dict__}, indent=2, sort_keys=True).encode()
    atomic_write_bytes(qc_dir / f"results-{run_id}.json", payload)
    if summary.errors:
        log.warning("qc: %d expectations raised or gave no result; their rows fail", len(summary.errors))
    log.info("qc: %d of %d rows failed", summary.failed_rows, summary.rows)
    return out, summary


def _validate_group(context: Any, source: Any, group: str, rows: pd.DataFrame, suite: Any) -> Any:
    import great_expectations as gx

    asset = source.add_dataframe_asset(f"rows-{group}")
    batch = asset.add_batch_definition_whole_dataframe("all")
    suite = context.suites.add_or_update(suite)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"manifest-{group}", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"manifest-{group}",
            validation_definitions=[definition],
            actions=[],
            result_format={"result_format": "COMPLETE"},
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": rows})
    return next(iter(run.run_results.values()))
