"""The docs cannot drift: a figure lives in docs/figures.md only, and what points at it agrees with it.

The README keeps a short headline table whose third column links each line to its rows in
docs/figures.md; every number the README shows must be in those rows. Elsewhere a figure is a link
(``docs/figures.md#p3``), and every such link must name a row that exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FIGURES = ROOT / "docs" / "figures.md"
ANCHOR = re.compile(r'<a id="([a-z0-9-]+)"></a>')
LINK = re.compile(r"figures\.md#([a-z0-9-]+)")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
# A measured value as docs/figures.md prints it in bold: decimals or milliseconds, with a unit.
MEASURED = re.compile(r"\d+\.\d+ ?(?:ms|s|MB|MiB|M lines/s)(?!\w)|\d+ ms(?!\w)")


def figure_rows() -> dict[str, str]:
    """docs/figures.md's table rows, by the anchor each begins with."""
    rows: dict[str, str] = {}
    for line in FIGURES.read_text().splitlines():
        found = ANCHOR.search(line) if line.startswith("| ") else None
        if found:
            assert found.group(1) not in rows, f"two rows of docs/figures.md are #{found.group(1)}"
            rows[found.group(1)] = line
    return rows


def readme_sections() -> tuple[str, str]:
    """The README's Figures section, and the README without it."""
    head, rest = README.read_text().split("\n## Figures\n", 1)
    section, tail = rest.split("\n## ", 1)
    return section, f"{head}\n## {tail}"


def headline() -> list[tuple[str, str, list[str]]]:
    """The README's headline table: (what, the figures shown, the anchors of its rows in docs/figures.md)."""
    rows = []
    for line in readme_sections()[0].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and LINK.search(cells[2]):
            rows.append((cells[0], cells[1], LINK.findall(cells[2])))
    return rows


def test_the_readme_has_a_headline_table_and_stays_short():
    assert len(headline()) >= 5
    assert len(README.read_text().splitlines()) <= 250


@pytest.mark.parametrize(("what", "shown", "anchors"), headline(), ids=lambda value: str(value)[:40])
def test_each_headline_figure_is_the_one_in_docs_figures(what, shown, anchors):
    rows = figure_rows()
    assert set(anchors) <= set(rows), f"README's {what!r} links to rows docs/figures.md does not have"
    known = set(NUMBER.findall(" ".join(rows[anchor] for anchor in anchors)))
    differ = [number for number in NUMBER.findall(shown) if number not in known]
    assert not differ, f"README's {what!r} shows {differ}, which docs/figures.md#{anchors} does not"


def linking_files() -> list[Path]:
    return [
        README,
        ROOT / "CHANGELOG.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "spiffctl").rglob("*.py")),
        *sorted((ROOT / "bench").glob("*.py")),
    ]


def test_every_link_to_a_figure_names_a_row_that_exists():
    rows = figure_rows()
    dangling = [
        f"{path.relative_to(ROOT)}: #{anchor}"
        for path in linking_files()
        for anchor in LINK.findall(path.read_text())
        if anchor not in rows
    ]
    assert not dangling


def test_no_measured_figure_is_copied_out_of_docs_figures():
    """A copy drifts (docs/lease.md once said P3 2.85 s where docs/figures.md said 2.67 s): link instead.

    CHANGELOG.md may quote a figure: it says what was measured when, not what holds today."""
    table = "\n".join(figure_rows().values())
    measured = {value for bold in re.findall(r"\*\*([^*]+)\*\*", table) for value in MEASURED.findall(bold)}
    history = ROOT / "CHANGELOG.md"
    texts = {path: path.read_text() for path in linking_files() if path not in (README, FIGURES, history)}
    texts[README] = readme_sections()[1]
    copies = [
        f"{path.relative_to(ROOT)}: {value}"
        for path, text in texts.items()
        for value in sorted(measured)
        if re.search(rf"(?<![\d.]){re.escape(value)}(?!\w)", text)
    ]
    assert not copies
