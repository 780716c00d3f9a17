"""One self-contained HTML page of a run's diagnostics: every figure (PNG inlined as base64),
table and prototype stored under ``RUN/diagnose/``; with several runs, side by side.

Sections follow the paper's order; a section whose analysis is stored in none of the runs says
how to compute it instead of failing.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thresher.errors import RunError
from thresher.store import Run


def sections() -> list[tuple[str, str, str]]:
    """``(section id, heading, what the paper calls it)``: each registered analysis in order,
    followed by its extra sections (prototypes after archetypes, Table II after adversaries)."""
    from thresher.diagnose.analyses import ANALYSES

    out = []
    for name in ANALYSES.in_order():
        rec = ANALYSES.get(name)
        out.append((name, rec.heading or rec.title, rec.paper))
        out.extend(rec.extra_sections)
    return out


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee}.missing{color:#a33}.note{color:#555;font-size:.9em}
.cols{display:flex;gap:2em;flex-wrap:wrap}.cols>div{flex:1;min-width:420px}
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(rows: list[list[str]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
        for row in rows[1:]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _label(run: Run) -> str:
    recipe = run.config.get("recipe", {})
    loss = recipe.get("loss", "ce")
    drw = recipe.get("drw_epoch")
    suffix = f"{loss}" + ("-drw" if drw else "")
    return f"{run.path.name} ({run.config.get('model', {}).get('name', '?')}, {suffix})"


@dataclass(frozen=True)
class ReportSection:
    """One section of the diagnostics, as both the HTML report and the app draw it.

    Attributes:
        id: the section id (an analysis name, or ``prototypes``, ``table-ii``, ``label-issues``).
        heading: the section's title; ``paper``: what the paper calls it (``"Fig. 2"``).
        figures: ``(alt text, PNG bytes)`` per figure.
        tables: ``(caption, rows)`` per table, rows of strings with the header first.
        note: a sentence under the heading (how to read it), or "".
        missing: the analysis to compute when nothing is stored (``thresher diagnose RUN
            --only <missing>``), else None.
    """

    id: str
    heading: str
    paper: str = ""
    figures: tuple[tuple[str, bytes], ...] = ()
    tables: tuple[tuple[str, list[list[str]]], ...] = ()
    note: str = ""
    missing: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, figures as their alt texts (the app fetches each PNG by index)."""
        return {
            "id": self.id,
            "heading": self.heading,
            "paper": self.paper,
            "figures": [alt for alt, _ in self.figures],
            "tables": [{"caption": c, "rows": rows} for c, rows in self.tables],
            "note": self.note,
            "missing": self.missing,
        }


def report_sections(runs: Sequence[Run]) -> list[ReportSection]:
    """The diagnostics of ``runs`` (one, or several side by side) as sections, in the paper's
    order, label issues first when any run has them.

    Raises
    ------
    RunError
        no run given, or none of them has any stored diagnostics.
    """
    from thresher.workflows.diagnose import load_result, stored_analyses

    if not runs:
        raise RunError("a report needs at least one run directory")
    stored = {id(r): stored_analyses(r) for r in runs}
    if not any(stored.values()):
        raise RunError(
            f"{runs[0].path} has no diagnostics; run `thresher diagnose {runs[0].path}` first"
        )
    labels = [_label(r) for r in runs]
    results: dict[str, list[tuple[str, Any]]] = {}
    for run, label in zip(runs, labels, strict=True):
        for name in stored[id(run)]:
            results.setdefault(name, []).append((label, load_result(run, name)))
    out = []
    if any(r.exists("labels/result.parquet") for r in runs):
        out.append(_label_issues_section(runs, labels))
    for sid, heading, paper in sections():
        out.append(_section(sid, heading, paper, results, runs, labels))
    return out


def build_report(runs: Sequence[Run], *, title: str | None = None) -> str:
    """The HTML page (a string) for ``runs`` (one, or several side by side).

    Raises
    ------
    RunError
        no run given, or none of them has any stored diagnostics.
    """
    parts_of = report_sections(runs)
    labels = [_label(r) for r in runs]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title or 'Thresher diagnostics')}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title or 'Thresher diagnostics')}</h1>",
        "<p class='note'>Imbalanced-data diagnostics after Dablain et al., "
        "<i>Interpretable ML for Imbalanced Data</i>. Runs: "
        + ", ".join(html.escape(lb) for lb in labels)
        + "</p>",
        "<nav><ul>"
        + "".join(
            f"<li><a href='#{sid}'>{html.escape(h)}{f' ({p})' if p else ''}</a></li>"
            for sid, h, p in sections()
        )
        + "</ul></nav>",
    ]
    for sec in parts_of:
        parts.append(_section_html(sec))
    parts.append("</body></html>")
    return "\n".join(parts)


def _section_html(sec: ReportSection) -> str:
    paper = f" <small>({html.escape(sec.paper)})</small>" if sec.paper else ""
    body = [f"<section id='{sec.id}'><h2>{html.escape(sec.heading)}{paper}</h2>"]
    if sec.missing is not None:
        body.append(_missing(sec.missing))
    else:
        if sec.note and sec.id == "label-issues":
            body.append(f"<p class='note'>{html.escape(sec.note)}</p>")
        figures = [_img(png, alt) for alt, png in sec.figures]
        if sec.id == "prototypes":
            figures = [f"<div>{f}</div>" for f in figures]
            body.append(f"<div class='cols'>{''.join(figures)}</div>")
        else:
            body.extend(figures)
        if sec.id == "table-ii" and sec.tables:
            body.append(_table(sec.tables[0][1]))
            body.append(f"<p class='note'>{html.escape(sec.note)}</p>")
            rest = sec.tables[1:]
        else:
            rest = sec.tables
        cols = "".join(
            f"<div><h3>{html.escape(caption)}</h3>{_table(rows)}</div>" for caption, rows in rest
        )
        if rest:
            body.append(f"<div class='cols'>{cols}</div>")
    body.append("</section>")
    return "".join(body)


LABEL_ROWS = 20  # suspects listed per run


def _label_issues_section(runs: Sequence[Run], labels: list[str]) -> ReportSection:
    """Likely mislabelled training images (``thresher labels``), most suspect first."""
    import numpy as np

    from thresher.workflows.labels import load_label_issues

    tables = []
    for run, label in zip(runs, labels, strict=True):
        if not run.exists("labels/result.parquet"):
            continue
        issues = load_label_issues(run)
        names = list(run.config.get("classes", []))

        def cls(c: int, names: list[str] = names) -> str:
            return names[c] if 0 <= c < len(names) else str(c)

        order = np.lexsort((issues.ids, -issues.label_score))[:LABEL_ROWS]
        rows = [["id", "label", "suggested", "label score", "flagged"]]
        rows += [
            [
                str(issues.ids[i]),
                cls(int(issues.labels[i])),
                cls(int(issues.suggested_label[i])),
                f"{issues.label_score[i]:.3f}",
                "yes" if issues.is_label_issue[i] else "no",
            ]
            for i in order
        ]
        caption = (
            f"{label}: {issues.summary()} ({issues.params.get('method', '')}, "
            f"{issues.params.get('folds', '?')} folds)"
        )
        tables.append((caption, rows))
    return ReportSection(
        id="label-issues",
        heading="Label issues",
        paper="confident learning, cleanlab",
        tables=tuple(tables),
        note="Out-of-sample probabilities from cross-validated training; remove them with "
        "thresher filter RUN --label-issues PCT.",
    )


def _missing(name: str) -> str:
    return (
        f"<p class='missing'>Not computed: run <code>thresher diagnose RUN --only {name}</code>."
        "</p>"
    )


def _section(
    sid: str,
    heading: str,
    paper: str,
    results: dict[str, list[tuple[str, Any]]],
    runs: Sequence[Run],
    labels: list[str],
) -> ReportSection:
    from thresher.report.diagnose_figures import figure_for, png_bytes, prototypes_figure
    from thresher.workflows.diagnose import load_prototypes

    def missing(name: str) -> ReportSection:
        return ReportSection(id=sid, heading=heading, paper=paper, missing=name)

    if sid == "prototypes":
        items = results.get("archetypes")
        if not items:
            return missing("archetypes")
        figures = []
        for run, label in zip(runs, labels, strict=True):
            res = dict(items).get(label)
            images = load_prototypes(run)
            if res is None or images is None:
                continue
            figures.append(
                (f"prototypes {label}", png_bytes(prototypes_figure(label, res, images)))
            )
        if not figures:
            return missing("archetypes")
        return ReportSection(id=sid, heading=heading, paper=paper, figures=tuple(figures))
    if sid == "table-ii":
        items = results.get("adversaries")
        if not items:
            return missing("adversaries")
        rows = [["run", "NNB weighting", "NNB KLD", "FDR KLD", "Random KLD", "NNB: Random factor"]]
        for label, res in items:
            t = res.table_ii
            rows.append(
                [label, res.weighting]
                + [f"{t[m]:.4f}" for m in ("nnb", "fdr", "random")]
                + [f"{t['random_over_nnb']:.3f}"]
            )
        rows.append(
            ["paper, CIFAR-10 (ResNet-32, 100:1)", "paper", "0.5561", "0.5157", "4.535", "8.155"]
        )
        return ReportSection(
            id=sid,
            heading=heading,
            paper=paper,
            tables=(("Table II", rows), *((label, res.table()) for label, res in items)),
            note="Mean over reference classes with validation false positives of "
            "KL(validation FP distribution || forecast); see docs/diagnostics.md.",
        )
    items = results.get(sid)
    if not items:
        return missing(sid)
    return ReportSection(
        id=sid,
        heading=heading,
        paper=paper,
        figures=((sid, png_bytes(figure_for(sid, items))),),
        tables=tuple((label, res.table()) for label, res in items),
    )


def write_report(
    runs: Sequence[Run], *, out: str | os.PathLike[str] | None = None, title: str | None = None
) -> Path:
    """Write the page to ``out`` (default ``RUN/diagnose/report.html`` of the first run)."""
    from thresher.store import atomic_path

    text = build_report(runs, title=title)
    path = Path(out) if out is not None else runs[0].file("diagnose/report.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path
