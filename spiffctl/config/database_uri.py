"""The backend's database URI rules: which database it connects to, read from the environment.

The one place outside the database-kind modules that names each kind: the backend decides by
scheme and by ``SPIFFWORKFLOW_BACKEND_DATABASE_TYPE``, so its rules are a table per scheme (what
the URI may say) and a table per type (the URI the backend derives without one):

* the type comes from the URI scheme (part before ``+``, ``postgresql`` -> ``postgres``) and
  otherwise from ``SPIFFWORKFLOW_BACKEND_DATABASE_TYPE``, default ``mysql``;
* without a URI the backend derives one per type with database ``spiffworkflow_backend_<ENV>``.

:func:`database` answers a :class:`Target` (or ``None``) and appends what is wrong to the
caller's problems; :mod:`spiffctl.config.settings` turns the target into an endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spiffctl.config.problem import Problem
from spiffctl.util import urls
from spiffctl.util.redact import quote

P = "SPIFFWORKFLOW_BACKEND_"
DATABASE_URI = P + "DATABASE_URI"
DATABASE_TYPE = P + "DATABASE_TYPE"
DATABASE_PASSWORD = P + "DATABASE_PASSWORD"
# Where a derived database URI "comes from": the variable an operator sets to change it.
DERIVED = f"{DATABASE_URI} (unset; derived from {DATABASE_TYPE})"
DEFAULT_TYPE = "mysql"

# scheme -> probe kind, for every place a database URL can appear (the URI, db+ results, the lease).
DB_SCHEMES = {"mysql": "mysql", "postgresql": "postgres", "sqlite": "sqlite"}
# Read by SQLAlchemy, so parsed with its grammar.
SQL_KINDS = tuple(DB_SCHEMES.values())
# The drivers the backend image ships, per scheme ("" is the scheme's default driver).
_DRIVERS = {"mysql": {"", "mysqldb"}, "postgresql": {"", "psycopg2"}, "sqlite": {"", "pysqlite"}}
# Schemes an operator plausibly writes that the backend refuses: (message, fix).
_REFUSED = {
    "postgres": ("uses the scheme postgres://, which SQLAlchemy 2 does not know", "write postgresql:// instead"),
    "mariadb": (
        "uses the scheme mariadb://, which the backend rejects",
        "write mysql:// (MariaDB speaks the MySQL protocol)",
    ),
}
UNSUPPORTED_FIX = "use postgresql://, mysql:// or sqlite:///"
RESULT_DATABASES_FIX = "use db+postgresql:// or db+mysql://, or unset it (results are ignored)"

Getter = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Target:
    """The database the backend would connect to."""

    kind: str  # probe kind: postgres, mysql, sqlite
    url: str
    variable: str  # where it comes from, in the operator's terms
    check_shape: bool = False  # an operator's URI: malformed ones must be refused before a probe


def split_scheme(url: str) -> tuple[str, str]:
    """(scheme, driver) of ``mysql+pymysql://...`` -> ("mysql", "pymysql")."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    base, _, driver = scheme.partition("+")
    return base, driver


def unsupported(scheme: str) -> str:
    return f"has an unsupported scheme {scheme + '://' if scheme else '(none)'}"


def database(get: Getter, backend_env: str, backend: Path, problems: list[Problem]) -> Target | None:
    """The backend's database, as it picks it; ``None`` when it would not start (a problem says why)."""
    uri = get(DATABASE_URI)
    if uri:
        return _given(uri, get(DATABASE_TYPE), backend, problems)
    return _derived(get, backend_env, backend, problems)


def _given(uri: str, type_var: str | None, backend: Path, problems: list[Problem]) -> Target | None:
    scheme, driver = split_scheme(uri)
    if scheme in _REFUSED:
        problems.append(Problem(DATABASE_URI, *_REFUSED[scheme]))
        return None
    if scheme not in DB_SCHEMES:
        problems.append(Problem(DATABASE_URI, unsupported(scheme), UNSUPPORTED_FIX))
        return None
    kind = DB_SCHEMES[scheme]
    problems.extend(p for rule in _GIVEN_RULES if (p := rule(scheme, driver, kind, type_var)))
    if kind != "sqlite":
        return Target(kind, uri, DATABASE_URI, check_shape=True)
    problem = urls.sqlite_problem(uri)
    if problem:
        problems.append(Problem(DATABASE_URI, *problem))
        return None
    return Target(kind, _sqlite_absolute(uri, backend), DATABASE_URI)


def _driver_shipped(scheme: str, driver: str, kind: str, type_var: str | None) -> Problem | None:
    if driver in _DRIVERS[scheme]:
        return None
    return Problem(
        DATABASE_URI,
        f"names the driver {driver!r}, which the backend image does not ship",
        f"write {scheme}:// (the backend uses its own driver)",
        "warning",
    )


def _type_agrees(scheme: str, driver: str, kind: str, type_var: str | None) -> Problem | None:
    if not type_var or type_var == kind:
        return None
    return Problem(
        DATABASE_TYPE,
        f"says {quote(type_var)} but {DATABASE_URI} is {kind}; the URI wins",
        f"unset {DATABASE_TYPE} or make it match",
        "warning",
    )


# Warnings about a URI the backend still uses, in the order they are reported.
_GIVEN_RULES: tuple[Callable[[str, str, str, str | None], Problem | None], ...] = (_driver_shipped, _type_agrees)


def _sqlite_absolute(uri: str, backend: Path) -> str:
    """SQLAlchemy reads ``sqlite:///rel`` relative to the cwd, which is the backend root."""
    path = uri.split("://", 1)[1]
    path = path[1:] if path.startswith("/") else path  # sqlite:///x -> "x"; sqlite:////abs -> "/abs"
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return "sqlite://"
    p = Path(path)
    return f"sqlite:///{p if p.is_absolute() else backend / p}"


def _derived(get: Getter, backend_env: str, backend: Path, problems: list[Problem]) -> Target | None:
    type_var = get(DATABASE_TYPE)
    derive = _DERIVE.get(type_var or DEFAULT_TYPE)
    if derive is None:  # reported by the variables table
        return None
    if not type_var:
        problems.append(
            Problem(
                DATABASE_TYPE,
                "is not set, so the backend defaults to mysql at root@127.0.0.1",
                f"set {DATABASE_URI} (or {DATABASE_TYPE}) explicitly",
                "warning",
            )
        )
    return derive(get, backend_env, backend, problems)


def _database_name(backend_env: str) -> str:
    return f"spiffworkflow_backend_{backend_env}"


def _derive_sqlite(get: Getter, backend_env: str, backend: Path, problems: list[Problem]) -> Target:
    url = f"sqlite:///{backend / 'src' / 'instance' / f'db_{backend_env}.sqlite3'}"
    return Target("sqlite", url, DERIVED)


def _derive_postgres(get: Getter, backend_env: str, backend: Path, problems: list[Problem]) -> Target:
    url = f"postgresql://spiffworkflow_backend:spiffworkflow_backend@localhost:5432/{_database_name(backend_env)}"
    return Target("postgres", url, DERIVED)


def _derive_mysql(get: Getter, backend_env: str, backend: Path, problems: list[Problem]) -> Target | None:
    # Exactly as the backend builds it: the password is not percent-encoded, so SQLAlchemy reads
    # it up to its first "@" and decodes "%xx" in it; say so rather than probe with the same
    # wrong password and blame the server.
    password = get(DATABASE_PASSWORD) or ""
    url = f"mysql+mysqldb://root:{password}@127.0.0.1/{_database_name(backend_env)}"
    try:
        read = urls.parse(url, "sqlalchemy").password
    except urls.URLError:
        read = None
    if read != password:
        problems.append(
            Problem(
                DATABASE_PASSWORD,
                "holds '@' or a %xx sequence, which the backend puts into its database URI unencoded, so the "
                "password it sends differs from this one",
                f"set {DATABASE_URI}=mysql://root:<percent-encoded password>@127.0.0.1/<database> instead",
            )
        )
        return None
    # A refused login is about the password: name the variable that holds it.
    where = f"{DATABASE_PASSWORD} (the URI is derived from {DATABASE_TYPE})" if password else DERIVED
    return Target("mysql", url, where)


# DATABASE_TYPE -> the URI the backend derives without DATABASE_URI (keys are the variable's choices).
_DERIVE: dict[str, Callable[[Getter, str, Path, list[Problem]], Target | None]] = {
    "mysql": _derive_mysql,
    "postgres": _derive_postgres,
    "sqlite": _derive_sqlite,
}
DATABASE_TYPES = tuple(_DERIVE)
