"""The layout drawn in docs/design.md and the README's Design section is the tree on disk.

Both are read by maintainers to find their way; a module that moved or appeared without the
drawing following is exactly the drift this test exists to catch.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "spiffctl"
SKIP = {"__init__.py", "__main__.py"}


def on_disk() -> set[str]:
    """Every module and package under spiffctl/, as paths relative to it (packages end in /).

    Packages are found from their modules, so a folder left holding only ``__pycache__`` is not one.
    """
    out: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        out.update(f"{parent.as_posix()}/" for parent in rel.parents if parent != Path("."))
        if path.name not in SKIP:
            out.add(rel.as_posix())
    return out


def drawn(text: str, heading: str) -> set[str]:
    """The paths drawn in the first code block after ``heading``: two spaces of indent per level,
    each entry first on its line; a line may name several siblings (``a.py, b.py``)."""
    section = text.split(heading, 1)[1]
    block = section.split("```", 2)[1]
    stack: list[str] = []
    out: set[str] = set()
    for line in block.splitlines():
        match = re.match(r"^( *)((?:[\w.]+(?:\.py|/))(?:, [\w.]+(?:\.py|/))*)(?:\s|$)", line)
        if not match:
            continue
        depth = len(match.group(1)) // 2
        names = match.group(2).split(", ")
        if depth == 0:
            stack = [names[0]] if names[0] == "spiffctl/" else []
            continue
        if not stack:
            continue  # tests/, bench/: outside the package
        del stack[depth:]
        prefix = "".join(stack[1:])
        out.update(prefix + name for name in names if name not in SKIP)
        if names[-1].endswith("/"):
            stack.append(names[-1])
    return out


def test_docs_design_draws_every_module_and_nothing_else():
    tree = drawn((ROOT / "docs" / "design.md").read_text(), "## Layout")
    assert sorted(tree ^ on_disk()) == [], "redraw docs/design.md's Layout from the tree (symmetric difference shown)"


def test_readme_design_names_every_package():
    tree = drawn((ROOT / "README.md").read_text(), "## Design")
    packages = {p for p in on_disk() if p.endswith("/") and p.count("/") == 1}
    assert packages <= tree, f"the README's Design section lacks {sorted(packages - tree)}"
    assert tree <= on_disk(), f"the README's Design section names what is gone: {sorted(tree - on_disk())}"
