"""``bench report``: one static page with the board, inlined images, links to
every record, study plots and diagnostics, and nothing fetched from anywhere."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

from harness.score import scoring
from harness.score.report import write_report
from tests.test_scoring import defining_size, record, write

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


def _results(root: Path) -> Path:
    write(root, record(sub="fast", t=10.0), "tune/w-tiny/fast/study_0/trial_0")
    write(root, record(sub="slow<b>", t=20.0, steps=200), "tune/w-tiny/slow/study_0/trial_0")
    # a run that logs diagnostics (metrics.jsonl rows carry diagnostics/* keys)
    run = write(root, record(sub="diag", t=15.0, steps=150), "tune/w-tiny/diag/study_0/trial_0").parent
    rows = [{"step": 50, "timed_s": 5.0, "validation/accuracy": 0.5, "diagnostics/grad_norm": 3.0},
            {"step": 150, "timed_s": 15.0, "validation/accuracy": 0.95, "diagnostics/grad_norm": 1.25,
             "diagnostics/update_ratio": 0.001}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    study = root / "study_batch" / "w-tiny"
    study.mkdir(parents=True)
    (study / "batch_scaling.png").write_bytes(PNG + b"batch-plot")
    return root


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_report_holds_board_curves_study_plots_diagnostics_and_record_links(tmp_path, monkeypatch):
    monkeypatch.setattr(scoring, "installed_size", defining_size)
    root = _results(tmp_path / "results")
    path = write_report(root, tmp_path / "out")
    page = path.read_text()
    assert "<h2>Leaderboard</h2>" in page and "fast" in page and "Performance profiles" in page
    assert "slow&lt;b&gt;" in page and "slow<b>" not in page  # record text is escaped
    images = _images(page)
    assert len(images) >= 3 and all(i.startswith(PNG) for i in images)  # profile, curves, the study plot
    assert PNG + b"batch-plot" in images and "study_batch/w-tiny/batch_scaling.png" in page
    for name in ("fast", "slow", "diag"):  # each record linked, relative to the page
        href = f"../results/tune/w-tiny/{name}/study_0/trial_0/run.json"
        assert f'href="{href}"' in page and (path.parent / href).is_file()
    assert "Diagnostics" in page and "grad_norm" in page and "update_ratio" in page and "1.25" in page
    # self-contained: no URL that a browser would fetch, no script
    assert not re.search(r"(src|href)=\"(https?:)?//", page) and "<script" not in page and "http" not in page


def test_report_cli_writes_the_page_and_refuses_a_missing_directory(tmp_path):
    (tmp_path / "results").mkdir()
    out = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(tmp_path / "results"), "--out",
                          str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "no board" in page
    bad = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(tmp_path / "nope")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and len((bad.stdout + bad.stderr).strip().splitlines()) == 1
