"""Build ``tiny_corpus.txt``, the gpt workload's tiny text, from CPython's docstrings.

Run once, by hand, to (re)make the shipped file::

    python -m workloads.gpt.make_corpus            # writes workloads/gpt/tiny_corpus.txt

The tiny workload never runs this: it reads the shipped file and checks its
sha256 (``data.TINY_CORPUS_SHA256``), so the text is byte-identical on every
Python version. Regenerating with another Python gives other text: update the
hash and recalibrate the tiny target if you do.

The text is the docstrings (module, class, function) of the pure-Python
modules at the top level of the standard library, in sorted file order, each
cleaned with ``inspect.cleandoc`` and separated by a blank line, restricted to
printable ASCII plus newline (other characters are dropped), cut at
``MAX_CHARS``. English prose with code fragments: a real character-level
language-modelling problem. The shipped file was made with CPython 3.11.7.

License: the docstrings are part of CPython, distributed under the Python
Software Foundation License Version 2 (https://docs.python.org/3/license.html),
which permits redistribution of derived works with the PSF's copyright notice:
"Copyright (c) 2001 Python Software Foundation; All Rights Reserved".
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import sys
import sysconfig
from pathlib import Path

MAX_CHARS = 786_432  # 768 KiB: a tiny run (600 x 32 x 64 chars) sees the train split ~1.7 times
ALPHABET = frozenset(chr(c) for c in range(32, 127)) | {"\n"}
OUT = Path(__file__).with_name("tiny_corpus.txt")


def docstrings(source: str):
    """Docstrings of the module and every class / function in it, in source order."""
    tree = ast.parse(source)
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    nodes.sort(key=lambda n: getattr(n, "lineno", 0))
    for node in nodes:
        doc = ast.get_docstring(node, clean=False)
        if doc:
            yield inspect.cleandoc(doc)


def build(stdlib: Path, max_chars: int = MAX_CHARS) -> str:
    parts, total = [], 0
    for path in sorted(stdlib.glob("*.py")):
        if path.name.startswith("_"):  # private modules: few docstrings, odd ones
            continue
        try:
            source = path.read_text(encoding="utf-8")
            found = list(docstrings(source))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for doc in found:
            text = "".join(ch for ch in doc if ch in ALPHABET).strip()
            if len(text) < 20:  # one-word stubs add nothing to learn
                continue
            parts.append(text + "\n\n")
            total += len(parts[-1])
        if total >= max_chars:
            break
    return "".join(parts)[:max_chars]


def main() -> None:
    text = build(Path(sysconfig.get_paths()["stdlib"]))
    OUT.write_text(text, encoding="ascii", newline="\n")
    print(f"wrote {OUT} ({len(text)} chars, Python {sys.version.split()[0]}), "
          f"sha256 {hashlib.sha256(text.encode('ascii')).hexdigest()}")


if __name__ == "__main__":
    main()
