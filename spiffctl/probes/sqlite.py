"""SQLite: open the file read-only and query it, or check that it can be created.

The backend creates its instance folder at start, so a missing file is fine as long as the
nearest existing ancestor folder is writable.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from spiffctl.config.settings import Endpoint
from spiffctl.probes import Outcome, ok, permanent, sql, transient


def path_of(endpoint: Endpoint) -> Path | None:
    """The database file; ``None`` for an in-memory database."""
    rest = endpoint.url.split("://", 1)[1]
    return Path(rest[1:]) if rest.startswith("/") and len(rest) > 1 else None


def connect(endpoint: Endpoint, timeout: float) -> Any:
    path = path_of(endpoint)
    if path is None:
        return sqlite3.connect(":memory:")
    # mode=ro: a probe must never create or change the operator's database.
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)


def classify(e: BaseException) -> Outcome:
    text = str(e)
    if "locked" in text or "busy" in text:
        return transient(f"database is locked ({text})")
    return permanent(text)


def check(endpoint: Endpoint, timeout: float) -> Outcome:
    path = path_of(endpoint)
    if path is None:
        return ok("in-memory database")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            return permanent(f"{path} is not readable and writable by uid {os.getuid()}")
        # SELECT 1 never touches the file; reading the schema proves it is a database.
        return sql.select_one(connect, classify, endpoint, timeout, "SELECT count(*) FROM sqlite_master")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        return permanent(f"{path} does not exist and {ancestor} is not writable by uid {os.getuid()}")
    return ok(f"{path} does not exist yet; {ancestor} is writable, the backend will create it")


def revision(endpoint: Endpoint, timeout: float) -> Outcome:
    path = path_of(endpoint)
    if path is not None and not path.exists():
        return ok("database file does not exist yet", revision="")
    return sql.schema_revision(connect, classify, missing_table, endpoint, timeout)


def missing_table(e: BaseException) -> bool:
    return "no such table" in str(e)
