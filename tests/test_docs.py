"""The README and docs/ hold together (issue 22): every relative link lands on a
file (and a heading, where it names one), the README keeps a newcomer's order and
length, and the long tables that moved to docs/ still list every built-in."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

README_SECTIONS = [
    "Quick start",
    "The command line",
    "Write a plugin",
    "Read a leaderboard",
    "Coming from AlgoPerf",
    "More",
]
README_MAX_LINES = 250

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def _prose(text: str) -> list[str]:
    """The lines of a markdown page outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def _without_code_spans(line: str) -> str:
    return re.sub(r"`[^`]*`", "", line)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in _prose(page.read_text(encoding="utf-8")) if line.startswith("#")}


def _links(page: Path) -> list[str]:
    found = []
    for line in _prose(page.read_text(encoding="utf-8")):
        found += LINK.findall(_without_code_spans(line))
    return found


def _headings(page: Path, level: int) -> list[str]:
    mark = "#" * level + " "
    return [line[len(mark):].strip() for line in _prose(page.read_text(encoding="utf-8")) if line.startswith(mark)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_a_file_that_exists(page):
    broken = []
    for link in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link} (no file {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target})")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link} (no heading #{anchor} in {target.relative_to(ROOT)})")
    assert not broken, f"{page.relative_to(ROOT)} links to what is not there:\n" + "\n".join(broken)


def test_the_readme_has_a_newcomers_sections_in_order():
    sections = _headings(README, 2)
    assert sections == README_SECTIONS, f"README sections are {sections}, want {README_SECTIONS}"


def test_the_readme_reads_in_five_minutes():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < README_MAX_LINES, f"README.md is {lines} lines; move detail into docs/ (limit {README_MAX_LINES})"


def test_the_readme_links_every_docs_page():
    linked = {(README.parent / link.partition("#")[0]).resolve() for link in _links(README)}
    missing = [p.name for p in DOCS if p.resolve() not in linked]
    assert not missing, f"README.md links none of: {', '.join(missing)}"


def _bench_commands() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", "--help"], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "COLUMNS": "200"}, check=True,
    ).stdout
    block = out.split("Commands:", 1)[1]
    return [m.group(1) for m in re.finditer(r"^\s{2}(\w[\w-]*)\s", block, re.M)]


def test_the_readme_command_block_shows_every_bench_command():
    commands = _bench_commands()
    assert {"run", "list", "show", "hw", "tune", "score", "compare", "calibrate", "new", "data"} <= set(commands)
    text = README.read_text(encoding="utf-8")
    section = text.split("## The command line", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    shown = {m.group(1) for m in re.finditer(r"^bench (\w[\w-]*)", block, re.M)}
    missing = [c for c in commands if c not in shown]
    assert not missing, f"the README's command block lacks: {', '.join(missing)}"


def _table_names(page: Path) -> set[str]:
    """Names in the first column of a page's tables, written as `name`."""
    names = set()
    for line in _prose(page.read_text(encoding="utf-8")):
        if line.startswith("| `"):
            names.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def test_every_builtin_submission_is_in_the_docs_tables():
    from harness.plugins.registry import Registry

    builtins = {n: p.kind for n, p in Registry().submissions.items() if p.origin == "builtin"}
    tables = {"optimizer": _table_names(ROOT / "docs" / "optimizers.md"), "norm": _table_names(ROOT / "docs" / "norms.md")}
    missing = sorted(f"{n} ({k})" for n, k in builtins.items() if n not in tables[k])
    assert builtins and not missing, f"built-ins missing from docs/optimizers.md / docs/norms.md: {', '.join(missing)}"


def test_every_workload_size_is_in_the_workloads_table():
    from harness.plugins.registry import Registry

    rows = set()
    for line in _prose((ROOT / "docs" / "workloads.md").read_text(encoding="utf-8")):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) > 2:
            rows.add((cells[0], cells[1]))
    missing = sorted(
        f"{name} {size}" for name, entry in Registry().workloads.items() for size in entry.info.sizes if (name, size) not in rows
    )
    assert not missing, f"docs/workloads.md's table lacks: {', '.join(missing)}"
