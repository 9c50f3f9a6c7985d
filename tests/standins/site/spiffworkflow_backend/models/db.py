"""Stand-in for the backend's Flask-SQLAlchemy object ``db``: ``db.engine`` only inside an app context."""

from __future__ import annotations

from typing import Any


class _DB:
    def __init__(self) -> None:
        self.in_context = 0
        self._engine: Any = None

    def connect(self, url: str) -> None:
        """A pooled engine with one connection made now and returned to the pool (no pre-ping, like the default)."""
        from sqlalchemy import create_engine, text

        scheme, _, rest = url.partition("://")
        driver = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}.get(scheme.split("+")[0], scheme)
        self._engine = create_engine(f"{driver}://{rest}", pool_size=1, max_overflow=0)
        with self._engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @property
    def engine(self) -> Any:
        if not self.in_context:
            raise RuntimeError("Working outside of application context.")
        return self._engine if self._engine is not None else _NoEngine()


class _NoEngine:
    """Without STANDIN_APP_DB: an engine with an empty pool."""

    def dispose(self) -> None:
        pass


db = _DB()
