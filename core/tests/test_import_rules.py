"""The import rules that import-linter (.importlinter, run by `make test`) cannot see.

A function-local import hides a dependency from a reader and from the contract checker's
first glance, and used to hide cycles. One stays only with a comment, on its line or the
line above, naming the real reason (a heavy library loaded on first use, Django's app
registry); a cycle is not a reason: the contracts say which way an import may point.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _source_files() -> list[Path]:
    """The project's own modules: every package at the root, without tests and migrations."""
    packages = [path.parent for path in ROOT.glob("*/__init__.py") if path.parent.name != "bench"]
    return sorted(
        path
        for package in packages
        for path in package.rglob("*.py")
        if "tests" not in path.relative_to(ROOT).parts and "migrations" not in path.relative_to(ROOT).parts
    )


def _comment_above(lines: list[str], index: int) -> bool:
    """A comment on the line above the import, or above the run of imports it belongs to."""
    index -= 1
    while index >= 0 and lines[index].strip().startswith(("import ", "from ")):
        index -= 1
    return index >= 0 and lines[index].strip().startswith("#")


def uncommented_local_imports(path: Path, *, root: Path = ROOT) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, (ast.Import, ast.ImportFrom)):
                line = lines[inner.lineno - 1]
                if "#" not in line and not _comment_above(lines, inner.lineno - 1):
                    found.append(f"{path.relative_to(root)}:{inner.lineno}: {line.strip()}")
    return sorted(set(found))


def test_every_function_local_import_says_why_it_is_not_at_the_top() -> None:
    offenders = [entry for path in _source_files() for entry in uncommented_local_imports(path)]
    assert offenders == [], "move these imports to the top of their module, or say why they cannot be:\n" + "\n".join(
        offenders
    )


def test_the_check_finds_an_uncommented_local_import(tmp_path: Path) -> None:
    module = tmp_path / "sample.py"
    module.write_text(
        "def f():\n    import json\n\n    return json\n\n\ndef g():\n    import csv  # loaded on first use\n\n\n"
        "def h():\n    # both loaded on first use\n    import csv\n    import json\n"
    )

    assert uncommented_local_imports(module, root=tmp_path) == ["sample.py:2: import json"]
