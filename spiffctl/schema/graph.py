"""The backend's Alembic migration graph, read from ``migrations/versions/*.py`` without Alembic.

Importing the migration modules would pull in SQLAlchemy and Alembic (neither is a spiffctl
dependency) and run arbitrary module code, so each file is parsed with :mod:`ast` and only its
module-level ``revision`` and ``down_revision`` assignments are read (plain or annotated, as newer
Alembic templates write them). A merge revision names several parents in a tuple.

The head is the revision that no other revision names as a parent. "Behind by N" counts the
revisions ``flask db upgrade`` would apply: ancestors of the head (head included) that are not
ancestors of the database's revision (itself included). With merges that is the honest count;
walking a single parent chain would undercount.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

VERSIONS = Path("migrations") / "versions"


class MigrationsError(Exception):
    """The folder cannot be read as one Alembic history; the message says why."""


@dataclass(frozen=True)
class Graph:
    parents: dict[str, tuple[str, ...]]  # revision -> its down_revision(s)

    @property
    def heads(self) -> list[str]:
        named = {p for ps in self.parents.values() for p in ps}
        return sorted(r for r in self.parents if r not in named)

    @property
    def head(self) -> str:
        """The single head; raises :class:`MigrationsError` when the history has several or none."""
        heads = self.heads
        if len(heads) != 1:
            raise MigrationsError(
                f"{len(heads)} heads ({', '.join(heads) or 'a cycle'}); the backend's history should have exactly one"
            )
        return heads[0]

    def __contains__(self, revision: object) -> bool:
        return revision in self.parents

    def ancestors(self, revision: str) -> set[str]:
        """``revision`` and every revision below it (iterative: histories have hundreds of steps)."""
        seen: set[str] = set()
        todo = [revision]
        while todo:
            rev = todo.pop()
            if rev in seen or rev not in self.parents:
                continue
            seen.add(rev)
            todo.extend(self.parents[rev])
        return seen

    def behind(self, current: str) -> int:
        """How many migrations an upgrade from ``current`` ("" = empty database) to the head applies."""
        pending = self.ancestors(self.head)
        if current:
            pending -= self.ancestors(current)
        return len(pending)


def read_graph(backend_dir: Path) -> Graph:
    """The migration graph of the backend rooted at ``backend_dir``."""
    folder = backend_dir / VERSIONS
    if not folder.is_dir():
        raise MigrationsError(f"no {VERSIONS} folder in {backend_dir}")
    parents: dict[str, tuple[str, ...]] = {}
    for path in sorted(folder.glob("*.py")):
        found = _identifiers(path)
        if found is None:
            continue  # __init__.py or a helper module: not a revision
        revision, down = found
        if revision in parents:
            raise MigrationsError(f"revision {revision} is defined twice (second time in {path.name})")
        parents[revision] = down
    if not parents:
        raise MigrationsError(f"no migration files in {folder}")
    return Graph(parents)


def _identifiers(path: Path) -> tuple[str, tuple[str, ...]] | None:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError) as e:
        raise MigrationsError(f"cannot read {path.name}: {e}") from None
    values: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                raise MigrationsError(f"{path.name}: {target.id} is not a literal") from None
    revision = values.get("revision")
    if not isinstance(revision, str) or not revision:
        return None
    down = values.get("down_revision")
    if down is None:
        return revision, ()
    if isinstance(down, str):
        return revision, (down,)
    if isinstance(down, (tuple, list)) and all(isinstance(d, str) for d in down):
        return revision, tuple(down)
    raise MigrationsError(f"{path.name}: down_revision {down!r} is neither a revision nor a tuple of them")
