"""The ``bench`` command line: one module per command group, all thin over
the Python API (harness.run, harness.sweeps, harness.score, harness.plugins).

Import nothing heavy here: ``bench --help`` and ``bench list`` must answer
without importing torch.
"""

from __future__ import annotations

from harness.cli.app import app, console
from harness.cli import run, sweeps, plugins, calibrate, show, study, report  # noqa: E402,F401  (each registers its commands on app)


def main() -> None:
    app(prog_name="bench")


__all__ = ["app", "console", "main"]
