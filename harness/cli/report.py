"""``bench report``: thin over harness.score.report.

Imported by harness/cli/__init__.py to register the command on ``app``. Module
level imports only typer and the standard library: ``bench --help`` must not
pay for pandas or matplotlib.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from harness.cli.app import app, console, user_errors


@app.command("report")
def report(
    results_dir: Path = typer.Argument(..., help="Results directory: every run.json under it (any layout)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write report.html. Default: RESULTS_DIR/report."),
    official_only: bool = typer.Option(False, "--official-only", help="Leaderboard of official records only (default: unofficial ones get boards of their own)."),
) -> None:
    """One self-contained HTML page: leaderboard, profiles, curves, study plots, records; nothing fetched."""
    with user_errors():
        from harness.errors import UserInputError
        from harness.score.report import write_report

        if not results_dir.is_dir():
            raise UserInputError(f"results directory {str(results_dir)!r} does not exist")
        path = write_report(results_dir, out, include_unofficial=not official_only)
    console.print(f"wrote {path}", highlight=False)
