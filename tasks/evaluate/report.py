"""A self-contained HTML report: metrics with intervals, subgroup tables, figures embedded as base64 PNG."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

import pandas as pd

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}
.flag{background:#fde2e1;border-left:4px solid #c0392b;padding:.5em 1em}
.ok{background:#e3f4e8;border-left:4px solid #27ae60;padding:.5em 1em}
img{max-width:100%}
"""


@dataclass
class Section:
    """One heading with optional paragraphs, tables and figures."""

    title: str
    paragraphs: list[str] = field(default_factory=list)  # plain text, escaped on render
    tables: list[pd.DataFrame] = field(default_factory=list)
    figures: list[bytes] = field(default_factory=list)  # PNG bytes
    flags: list[tuple[bool, str]] = field(default_factory=list)  # (is_problem, message)


def metrics_table(metrics: dict[str, object], names: list[str]) -> pd.DataFrame:
    """Rows of metric, estimate and 95% interval for the ``names`` present in ``metrics``."""
    rows = []
    for name in names:
        if name not in metrics:
            continue
        ci = metrics.get(f"{name}_ci")
        lo, hi = ci if isinstance(ci, list | tuple) else (None, None)
        rows.append({"metric": name, "estimate": metrics[name], "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["metric", "estimate", "ci_low", "ci_high"])


def render(title: str, sections: list[Section]) -> str:
    """The whole report as one HTML string (no external resources)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]  # fmt: skip
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in s.paragraphs]
        parts += [f"<div class='{'flag' if bad else 'ok'}'>{html.escape(m)}</div>" for bad, m in s.flags]
        parts += [t.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–", border=0) for t in s.tables]
        parts += [
            f"<img alt='{html.escape(s.title)}' src='data:image/png;base64,{base64.b64encode(f).decode()}'>"
            for f in s.figures
        ]
    parts.append("</body></html>")
    return "\n".join(parts)
