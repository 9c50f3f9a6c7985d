"""The migration graph read from a backend's ``migrations/versions`` folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from spiffctl.schema.graph import MigrationsError, read_graph


def write(root: Path, revision: str, down: object, *, annotated: bool = False, extra: str = "") -> None:
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    if annotated:  # newer Alembic templates
        body = f"revision: str = {revision!r}\ndown_revision: Union[str, Sequence[str], None] = {down!r}\n"
    else:
        body = f"revision = {revision!r}\ndown_revision = {down!r}\n"
    (versions / f"{revision}_step.py").write_text(
        f'"""step\n\nRevision ID: {revision}\nRevises: {down}\n"""\nimport sqlalchemy as sa\n{extra}\n'
        f"# revision identifiers, used by Alembic.\n{body}branch_labels = None\n\n"
        "def upgrade():\n    revision = 'not-module-level'\n"
    )


def test_linear_history(tmp_path):
    for rev, down in (("a1", None), ("b2", "a1"), ("c3", "b2")):
        write(tmp_path, rev, down)
    graph = read_graph(tmp_path)
    assert graph.head == "c3"
    assert graph.behind("c3") == 0
    assert graph.behind("b2") == 1
    assert graph.behind("a1") == 2
    assert graph.behind("") == 3  # empty database: every migration applies


def test_merge_revision_with_a_tuple_counts_both_branches(tmp_path):
    # base -> a -> b \
    #      -> c ------ merge (b, c) -> top
    write(tmp_path, "base", None)
    write(tmp_path, "a", "base")
    write(tmp_path, "b", "a", annotated=True)
    write(tmp_path, "c", "base")
    write(tmp_path, "merge", ("b", "c"))
    write(tmp_path, "top", "merge", annotated=True)
    graph = read_graph(tmp_path)
    assert graph.heads == ["top"]
    assert graph.behind("b") == 3  # c, merge, top
    assert graph.behind("c") == 4  # a, b, merge, top
    assert graph.behind("merge") == 1
    assert graph.behind("") == 6
    assert "merge" in graph and "zzz" not in graph


def test_unmerged_heads_are_reported(tmp_path):
    write(tmp_path, "base", None)
    write(tmp_path, "left", "base")
    write(tmp_path, "right", "base")
    graph = read_graph(tmp_path)
    assert graph.heads == ["left", "right"]
    with pytest.raises(MigrationsError, match="2 heads"):
        graph.head  # noqa: B018 - the property raises


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(MigrationsError, match="no migrations/versions folder"):
        read_graph(tmp_path)
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    (tmp_path / "migrations" / "versions" / "__init__.py").write_text("")
    with pytest.raises(MigrationsError, match="no migration files"):
        read_graph(tmp_path)


def test_broken_files_are_named(tmp_path):
    write(tmp_path, "a1", None)
    (tmp_path / "migrations" / "versions" / "bad.py").write_text("revision = (\n")
    with pytest.raises(MigrationsError, match=r"cannot read bad\.py"):
        read_graph(tmp_path)


def test_duplicate_revision(tmp_path):
    write(tmp_path, "a1", None)
    (tmp_path / "migrations" / "versions" / "copy.py").write_text("revision = 'a1'\ndown_revision = None\n")
    with pytest.raises(MigrationsError, match="defined twice"):
        read_graph(tmp_path)


def test_long_history_is_iterative(tmp_path):
    # The backend has hundreds of steps over time; no recursion limit may bite.
    previous = None
    for i in range(1500):
        write(tmp_path, f"r{i:04d}", previous)
        previous = f"r{i:04d}"
    graph = read_graph(tmp_path)
    assert graph.head == "r1499"
    assert graph.behind("r0000") == 1499
