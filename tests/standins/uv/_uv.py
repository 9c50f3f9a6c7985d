"""Stand-in for ``uv``: ``uv run flask db upgrade|downgrade|current|heads`` as the backend runs them.

Reached through the ``uv`` wrapper beside this file (put its folder first on PATH; see
tests/standins/__init__.py for the options and outputs). It needs SQLAlchemy 2, psycopg 3 and
PyMySQL (the test extra). The database work is real: a fresh database gets ``alembic_version``
created exactly as Alembic creates it, so two upgrades at once collide the way the real ones do.

What is modelled from Alembic / Flask-Migrate and the backend's migrations/env.py:
- every ``flask ...`` command first creates the whole app: ``STANDIN_APP_CPU`` CPU-seconds;
- env.py runs ``context.run_migrations()`` inside one ``context.begin_transaction()`` and the
  backend's ``Migrate()`` passes no ``transaction_per_migration``: on PostgreSQL (transactional
  DDL) the whole upgrade is ONE transaction; on MySQL/MariaDB and SQLite (non-transactional DDL)
  Alembic commits after each revision;
- the version table is created without ``IF NOT EXISTS`` after a plain existence check, so two
  upgrades that both see an empty database both try to create it;
- each revision runs real DDL (``CREATE TABLE standin_<revision>``) like a real migration, so a
  second upgrade that started from the same revision fails on MySQL/SQLite too;
- log lines to stderr in the backend's alembic.ini format (``INFO  [alembic.runtime.migration] ...``);
  an exception ends the command with its traceback and exit 1 (Flask's CLI does not catch it).
"""

from __future__ import annotations

import ast
import os
import re
import signal
import sys
import time
import traceback
from dataclasses import dataclass

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "backend", "bin"))
import _standin
from _standin import burn_cpu, record, say

FLASK_DB_COMMANDS = ("upgrade", "downgrade", "current", "heads")
MIGRATION_LOG = "INFO  [alembic.runtime.migration] "
UPDATE_VERSION = "UPDATE alembic_version SET version_num=:new WHERE version_num=:old"
# The backend's own drivers are psycopg2 and mysqlclient; the stand-in uses psycopg 3 and PyMySQL
# (what the test venv has) and prints their errors under the names the real backend prints.
DRIVER_NAMES = (
    (re.compile(r"\bpsycopg\.errors\."), "psycopg2.errors."),
    (re.compile(r"\bpymysql\.err\."), "MySQLdb."),
)


class Terminated(BaseException):
    """SIGTERM: unwinds through the ``with`` blocks, so the open transaction is rolled back."""


@dataclass(frozen=True)
class Revision:
    id: str
    down: tuple[str, ...]
    doc: str


# ------------------------------------------------------------------------------------ helpers


def fail(message: str, code: int) -> None:
    say(message, err=True)
    raise SystemExit(code)


def table_for(revision: str) -> str:
    return "standin_" + re.sub(r"\W", "_", revision)


def read_graph(root: str) -> dict[str, Revision]:
    """The revisions in ``<root>/migrations/versions/*.py``: module-level ``revision`` /
    ``down_revision`` (plain or annotated assignments), message = docstring's first paragraph."""
    folder = os.path.join(root, "migrations", "versions")
    if not os.path.isdir(folder):
        fail("Error: Path doesn't exist: migrations.  Please use the 'init' command to create a new scripts folder.", 1)
    graph: dict[str, Revision] = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py") or name.startswith("__"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            tree = ast.parse(f.read(), name)
        values: dict[str, object] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                target, value = node.targets[0].id, node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                target, value = node.target.id, node.value
            else:
                continue
            if target in ("revision", "down_revision"):
                values[target] = ast.literal_eval(value)
        if not isinstance(values.get("revision"), str):
            continue
        down = values.get("down_revision")
        downs = (down,) if isinstance(down, str) else tuple(down or ())  # type: ignore[arg-type]
        doc = (ast.get_docstring(tree) or "").split("\n\n", 1)[0].strip()
        rev = str(values["revision"])
        graph[rev] = Revision(rev, downs, doc)
    return graph


def heads_of(graph: dict[str, Revision]) -> list[str]:
    below = {d for r in graph.values() for d in r.down}
    return sorted(r for r in graph if r not in below)


def lineage(graph: dict[str, Revision], top: str) -> list[str]:
    """``top`` and its ancestors, parents before children (the order Alembic applies them)."""
    order: list[str] = []
    seen: set[str] = set()
    stack: list[tuple[str, bool]] = [(top, False)]
    while stack:
        rev, expanded = stack.pop()
        if expanded:
            order.append(rev)
        elif rev not in seen:
            seen.add(rev)
            stack.append((rev, True))
            stack.extend((d, False) for d in reversed(graph[rev].down) if d in graph)
    return order


def database_url(root: str) -> str:
    """The backend's database URI (config/__init__.py rules), with the test venv's drivers."""
    uri = os.environ.get("SPIFFWORKFLOW_BACKEND_DATABASE_URI", "")
    env = os.environ.get("SPIFFWORKFLOW_BACKEND_ENV") or "local_development"
    if not uri:
        kind = os.environ.get("SPIFFWORKFLOW_BACKEND_DATABASE_TYPE") or "mysql"
        name = f"spiffworkflow_backend_{env}"
        if kind == "sqlite":
            instance = os.path.join(root, "src", "instance")
            os.makedirs(instance, exist_ok=True)  # create_app makes the instance folder
            uri = f"sqlite:///{instance}/db_{env}.sqlite3"
        elif kind == "postgres":
            uri = f"postgresql://spiffworkflow_backend:spiffworkflow_backend@localhost:5432/{name}"
        else:
            password = os.environ.get("SPIFFWORKFLOW_BACKEND_DATABASE_PASSWORD", "")
            uri = f"mysql+mysqldb://root:{password}@127.0.0.1/{name}"
    scheme, sep, rest = uri.partition("://")
    driver = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "sqlite": "sqlite"}.get(
        scheme.split("+", 1)[0]
    )
    if not sep or driver is None:
        fail(f"sqlalchemy.exc.NoSuchModuleError: Can't load plugin: sqlalchemy.dialects:{scheme}", 1)
    return f"{driver}://{rest}"


def print_traceback(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    for pattern, name in DRIVER_NAMES:
        text = pattern.sub(name, text)
    sys.stderr.write(text)
    sys.stderr.flush()


# ------------------------------------------------------------------------------------ database


class Database:
    def __init__(self, root: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self.engine = create_engine(database_url(root), poolclass=NullPool)
        self.dialect = self.engine.dialect.name
        self.transactional_ddl = self.dialect == "postgresql"

    def context_lines(self) -> None:
        impl = {"postgresql": "PostgresqlImpl", "mysql": "MySQLImpl", "sqlite": "SQLiteImpl"}[self.dialect]
        ddl = "transactional" if self.transactional_ddl else "non-transactional"
        say(f"{MIGRATION_LOG}Context impl {impl}.", err=True)
        say(f"{MIGRATION_LOG}Will assume {ddl} DDL.", err=True)

    @staticmethod
    def has_version_table(conn: object) -> bool:
        from sqlalchemy import inspect

        return bool(inspect(conn).has_table("alembic_version"))

    def versions(self, conn: object) -> list[str]:
        from sqlalchemy import text

        if not self.has_version_table(conn):
            return []
        return [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]  # type: ignore[attr-defined]


def sql(conn: object, statement: str, **params: object) -> None:
    from sqlalchemy import text

    conn.execute(text(statement), params)  # type: ignore[attr-defined]


def create_version_table(conn: object) -> None:
    # No IF NOT EXISTS: Alembic checks first, then creates; two upgrades at once both create.
    sql(
        conn,
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))",
    )


def current_revision(db: Database, conn: object, graph: dict[str, Revision]) -> str:
    rows = db.versions(conn)
    for rev in rows:
        if rev not in graph:
            fail(f"ERROR [flask_migrate] Error: Can't locate revision identified by '{rev}'", 1)
    return rows[-1] if rows else ""


# ------------------------------------------------------------------------------------ commands


def cmd_heads(root: str) -> int:
    for head in heads_of(read_graph(root)):
        print(f"{head} (head)")
    return 0


def cmd_current(root: str) -> int:
    graph = read_graph(root)
    heads = heads_of(graph)
    db = Database(root)
    db.context_lines()
    with db.engine.connect() as conn:
        rows = db.versions(conn)
    for rev in rows:
        if rev not in graph:
            fail(f"ERROR [flask_migrate] Error: Can't locate revision identified by '{rev}'", 1)
        print(f"{rev} (head)" if rev in heads else rev)
    return 0


def cmd_upgrade(root: str, role: str) -> int:
    graph = read_graph(root)
    heads = heads_of(graph)
    if len(heads) != 1:
        fail(
            "ERROR [flask_migrate] Error: Multiple head revisions are present for given argument 'head'; please "
            "specify a specific target revision, '<branchname>@head' to narrow to a specific head, or 'heads' for "
            "all heads",
            1,
        )
    fail_at = _standin._opt("UPGRADE_FAIL_AT")
    total = _standin._float("UPGRADE_SECONDS", 2.0) or 0.0
    db = Database(root)
    db.context_lines()
    with db.engine.connect() as conn:
        # PostgreSQL: one transaction around everything; elsewhere one per step (see the docstring).
        whole = conn.begin() if db.transactional_ddl else None
        try:
            if not db.has_version_table(conn):
                create_version_table(conn)
                if whole is None:
                    conn.commit()
            current = current_revision(db, conn, graph)
            done = set(lineage(graph, current)) if current else set()
            todo = [rev for rev in lineage(graph, heads[0]) if rev not in done]
            for rev in todo:
                step = graph[rev]
                say(f"{MIGRATION_LOG}Running upgrade {', '.join(step.down)} -> {rev}, {step.doc}", err=True)
                if rev == fail_at:
                    # A real failing statement, so the error is the driver's own.
                    sql(conn, f"ALTER TABLE {table_for('fail_at_' + rev)} ADD COLUMN broken INTEGER")
                sql(conn, f"CREATE TABLE {table_for(rev)} (id INTEGER PRIMARY KEY)")
                time.sleep(total / len(todo))
                if current:
                    sql(conn, UPDATE_VERSION, new=rev, old=current)
                else:
                    sql(conn, "INSERT INTO alembic_version (version_num) VALUES (:new)", new=rev)
                if whole is None:
                    conn.commit()
                # On PostgreSQL "applied" means executed: it is committed with the last one.
                record(role, "revision", revision=rev, down=current)
                current = rev
            if whole is not None:
                whole.commit()
        except BaseException:
            if whole is not None and whole.is_active:
                whole.rollback()
            raise
    return 0


def cmd_downgrade(root: str) -> int:
    graph = read_graph(root)
    db = Database(root)
    db.context_lines()
    with db.engine.connect() as conn:
        whole = conn.begin() if db.transactional_ddl else None
        current = current_revision(db, conn, graph)
        if not current:
            fail("ERROR [flask_migrate] Error: Relative revision -1 didn't produce 1 migrations", 1)
        step = graph[current]
        down = step.down[0] if step.down else ""
        say(f"{MIGRATION_LOG}Running downgrade {current} -> {down}, {step.doc}", err=True)
        sql(conn, f"DROP TABLE IF EXISTS {table_for(current)}")
        if down:
            sql(conn, UPDATE_VERSION, new=down, old=current)
        else:
            sql(conn, "DELETE FROM alembic_version WHERE version_num=:old", old=current)
        if whole is not None:
            whole.commit()
        else:
            conn.commit()
    return 0


def flask_db(command: str) -> int:
    role = f"uv-{command}"
    _standin._state["role"] = role  # per-role options: STANDIN_UV_<NAME>

    def on_term(signum: int, _frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, on_term)
    record(role, "start", command=command)
    code = 1
    try:
        root = os.getcwd()
        if not os.path.isfile(os.path.join(root, "bin", "boot_server_in_docker")):
            fail(
                "Error: Could not locate a Flask application. Use the 'flask --app' option, 'FLASK_APP' environment "
                "variable, or a 'wsgi.py' or 'app.py' file in the current directory.",
                2,
            )
        burn_cpu(_standin._float("APP_CPU", 0.0) or 0.0)  # create_app
        if command == "heads":
            code = cmd_heads(root)
        elif command == "current":
            code = cmd_current(root)
        elif command == "upgrade":
            code = cmd_upgrade(root, role)
        else:
            code = cmd_downgrade(root)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except Terminated:
        code = 128 + signal.SIGTERM
    except Exception as exc:
        print_traceback(exc)
        code = 1
    record(role, "exit", exit_code=code)
    return code


def main(argv: list[str]) -> int:
    args = argv[1:]
    if args[:1] in (["--version"], ["-V"]):
        print("uv 0.0.0 (stand-in)")
        return 0
    if args[:1] != ["run"]:
        say(f"error: the stand-in uv only knows `uv run`, not: {' '.join(args)}", err=True)
        return 2
    args = args[1:]
    while args and args[0].startswith("-"):  # uv run's own options (--no-sync, --frozen): nothing to sync here
        args.pop(0)
    if not args:
        say("error: `uv run` needs a command", err=True)
        return 2
    if args[0] == "flask" and args[1:2] == ["db"]:
        if len(args) == 3 and args[2] in FLASK_DB_COMMANDS:
            return flask_db(args[2])
        say(f"Error: No such command '{' '.join(args[2:])}'.", err=True)
        return 2
    try:
        os.execvp(args[0], args)
    except OSError as exc:
        say(f"error: Failed to spawn: `{args[0]}`\n  Caused by: {exc.strerror} (os error {exc.errno})", err=True)
    return 2


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
