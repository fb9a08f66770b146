"""``bench report``: one self-contained static HTML page of a results directory.

The page needs no server and fetches nothing: every image is a PNG drawn with
matplotlib and inlined as base64, the style is inline, and the only links are
relative paths to the records (``run.json``) beside it. It holds, in order:

* the leaderboard (:func:`harness.score.scoring.score_records`, as ``bench
  score`` makes it: scores per board, time to target per workload) and the
  performance profiles (:func:`harness.score.scoring.plot_profiles`);
* per workload and size, the validation metric against timed seconds of every
  run (from its ``metrics.jsonl``), one colour per submission, the target dashed;
* every study plot found under the directory (``lr_sensitivity.png``,
  ``batch_scaling.png``), inlined;
* where runs' metrics.jsonl rows carry ``diagnostics/*`` keys, their last
  values per run;
* every record, with a link to it.

Text from records goes through :func:`html.escape`; no template engine.

Python::

    from harness.score.report import write_report
    write_report("results")          # results/report/report.html
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import tempfile
from pathlib import Path
from numbers import Real
from typing import Any, Callable, Iterable, Mapping, Sequence

from harness.run.records import METRICS_FILE, read_metrics

REPORT_FILE = "report.html"
STUDY_PLOTS = ("lr_sensitivity.png", "batch_scaling.png")
DIAGNOSTICS_PREFIX = "diagnostics/"
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}"
    "th{background:#f3f3f3}td.n{text-align:right}img{max-width:100%;border:1px solid #eee}"
    "h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}.note{color:#666;font-size:90%}"
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    """A table cell: numbers right-aligned and short, inf as "miss", None blank."""
    if isinstance(value, bool) or value is None:
        return f"<td>{'' if value is None else _e(value)}</td>"
    if isinstance(value, Real):  # numpy's numbers too
        v = float(value)
        shown = "miss" if math.isinf(v) else "—" if math.isnan(v) else f"{v:.4g}"
        return f'<td class="n">{shown}</td>'
    return f"<td>{_e(value)}</td>"


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """An HTML table; a cell given as ``("html", s)`` holds ``s`` as is (a link)."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{c[1]}</td>" if isinstance(c, tuple) and c[:1] == ("html",) else _cell(c)
                                    for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


# --------------------------------------------------------------------------- #
# Sections                                                                     #
# --------------------------------------------------------------------------- #


def leaderboard_section(board: Any) -> str:
    """Scores per board, time to target per workload, the profiles as one image."""
    from harness.score.scoring import plot_profiles

    parts = ["<h2>Leaderboard</h2>"]
    if not board.groups:
        return parts[0] + '<p class="note">no board: no finished, comparable records</p>'
    scores = board.scores
    parts.append(table(["board", "ruleset", "hardware", "rank", "submission", "score", "workloads within 4x"],
                       scores[["board", "ruleset", "hardware_id", "rank", "submission", "score",
                               "workloads_within_4x"]].itertuples(index=False)))
    ttt = board.time_to_target
    cols = [c for c in ("board", "ruleset", "hardware_id", "workload", "submission", "time_s", "steps", "ratio") if c in ttt]
    parts.append("<h3>Time to target (seconds; median over studies of the fastest trial)</h3>")
    parts.append(table(cols, ttt[cols].itertuples(index=False)))
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_profiles(board.groups, Path(tmp) / "profile.png")
        parts.append("<h3>Performance profiles</h3>" + img(path.read_bytes(), "performance profiles"))
    return "".join(parts)


def _curve_key(rec: Mapping[str, Any]) -> str:
    return f"{rec.get('workload')}-{rec.get('size')}"


def curves_section(records: Sequence[Mapping[str, Any]]) -> str:
    """Per workload and size, validation metric against timed seconds of every run."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    groups: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        groups.setdefault(_curve_key(rec), []).append(rec)
    parts = ["<h2>Validation curves</h2>"]
    for key in sorted(groups):
        recs = groups[key]
        target = recs[0].get("target") or {}
        metric = f"validation/{target.get('metric')}"
        fig, ax = plt.subplots(figsize=(7.5, 4))
        colours: dict[str, Any] = {}
        for rec in recs:
            rows = [r for r in read_metrics(Path(rec["_path"]).parent) if isinstance(r.get(metric), (int, float))]
            if not rows:
                continue
            label = str(rec.get("label") or (rec.get("submission") or {}).get("name"))
            line, = ax.plot([r["timed_s"] for r in rows], [r[metric] for r in rows], linewidth=1, alpha=0.7,
                            color=colours.get(label), label=None if label in colours else label)
            colours.setdefault(label, line.get_color())
        if isinstance(target.get("value"), (int, float)):
            ax.axhline(target["value"], color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("timed seconds")
        ax.set_ylabel(metric)
        ax.set_title(f"{key} · {len(recs)} run(s) · dashed: target", fontsize="medium")
        if colours:
            ax.legend(fontsize="small")
        parts.append(f"<h3>{_e(key)}</h3>" + img(_figure_png(fig), f"validation curves {key}"))
    return "".join(parts)


def study_plots_section(root: Path) -> str:
    found = sorted(p for name in STUDY_PLOTS for p in root.rglob(name))
    parts = ["<h2>Studies</h2>"]
    if not found:
        return parts[0] + '<p class="note">no study plots (bench study lr / bench study batch) found</p>'
    for path in found:
        parts.append(f"<h3>{_e(path.relative_to(root))}</h3>" + img(path.read_bytes(), path.name))
    return "".join(parts)


def diagnostics_section(records: Sequence[Mapping[str, Any]], link: Callable[[Mapping[str, Any]], str]) -> str:
    """The last value of each ``diagnostics/*`` key per run; empty when no run logs any."""
    rows, keys = [], []
    for rec in records:
        last: dict[str, Any] = {}
        for row in read_metrics(Path(rec["_path"]).parent):
            last.update({k: v for k, v in row.items() if k.startswith(DIAGNOSTICS_PREFIX)})
        if last:
            keys += [k for k in last if k not in keys]
            rows.append((rec, last))
    if not rows:
        return ""
    return "<h2>Diagnostics (last logged value per run)</h2>" + table(
        ["run", *[k[len(DIAGNOSTICS_PREFIX):] for k in keys]],
        [[("html", link(rec)), *[last.get(k) for k in keys]] for rec, last in rows])


def records_section(records: Sequence[Mapping[str, Any]], link: Callable[[Mapping[str, Any]], str]) -> str:
    ordered = sorted(records, key=lambda r: (_curve_key(r), str(r.get("label")), r["_path"]))
    return f"<h2>Records ({len(records)})</h2>" + table(
        ["record", "workload", "submission", "status", "time to target (s)", "steps to target", "steps", "batch",
         "official"],
        [[("html", link(r)), _curve_key(r), r.get("label") or (r.get("submission") or {}).get("name"),
          r.get("status"), r.get("time_to_target_s"), r.get("steps_to_target"), r.get("steps"), r.get("batch_size"),
          r.get("official")] for r in ordered])


# --------------------------------------------------------------------------- #
# The page                                                                     #
# --------------------------------------------------------------------------- #


def render(root: str | Path, out_dir: str | Path, *, include_unofficial: bool = True, sizes: Any = None) -> str:
    """The report's HTML for the records under ``root``, its links relative to ``out_dir``."""
    from harness.score.scoring import score_records

    root, out_dir = Path(root), Path(out_dir)
    board = score_records([root], include_unofficial=include_unofficial, sizes=sizes)
    records = board.records

    def link(rec: Mapping[str, Any]) -> str:
        rel = Path(os.path.relpath(Path(rec["_path"]).resolve(), out_dir.resolve())).as_posix()
        return f'<a href="{_e(rel)}">{_e(Path(rec["_path"]).parent.relative_to(root).as_posix())}</a>'

    notes = "".join(f"<li>{_e(w)}</li>" for w in board.warnings)
    body = [
        f"<h1>optbench report · {_e(root)}</h1>",
        f'<p class="note">{len(records)} finished record(s); images inlined, links relative to this file.</p>',
        leaderboard_section(board),
        f'<details><summary>notes ({len(board.warnings)})</summary><ul>{notes}</ul></details>' if notes else "",
        curves_section(records), study_plots_section(root), diagnostics_section(records, link),
        records_section(records, link),
    ]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>optbench report · {_e(root.name)}'
            f"</title><style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(root: str | Path, out_dir: str | Path | None = None, **kwargs: Any) -> Path:
    """Write ``report.html`` (default ``<root>/report/``) atomically; returns its path."""
    from harness.common.files import write_text_atomic

    out = Path(out_dir) if out_dir is not None else Path(root) / "report"
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_FILE
    write_text_atomic(path, render(root, out, **kwargs))
    path.chmod(0o644)  # a page to open and share, not a secret
    return path


__all__ = ["write_report", "render", "table", "img", "REPORT_FILE", "METRICS_FILE"]
