"""Stand-in for the backend's package: ``create_app()`` costs what the real one costs.

``STANDIN_CREATE_APP_CPU``  CPU-seconds burnt per app start (default 1)
``STANDIN_CREATE_APP_FAIL`` a file: while it exists, ``create_app()`` raises RuntimeError naming
                            ``SPIFFWORKFLOW_BACKEND_DATABASE_URI`` (password and all, as SQLAlchemy's
                            URL errors do)
``STANDIN_APP_DB``          ``true``: connect to ``SPIFFWORKFLOW_BACKEND_DATABASE_URI`` while loading
                            and keep that connection in the app's pool (like Flask-SQLAlchemy)
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from spiffworkflow_backend.models.db import db


def burn_cpu(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


class FlaskApp:
    @contextlib.contextmanager
    def app_context(self) -> Iterator[None]:
        db.in_context += 1
        try:
            yield
        finally:
            db.in_context -= 1


class App:
    """What ``create_app()`` returns: a connexion app whose ``.app`` is the Flask app."""

    def __init__(self) -> None:
        self.app = FlaskApp()


def create_app() -> Any:
    burn_cpu(float(os.environ.get("STANDIN_CREATE_APP_CPU") or 1.0))
    fail = os.environ.get("STANDIN_CREATE_APP_FAIL")
    if fail and os.path.exists(fail):
        uri = os.environ.get("SPIFFWORKFLOW_BACKEND_DATABASE_URI")
        raise RuntimeError(f"stand-in create_app failed (STANDIN_CREATE_APP_FAIL) for {uri}")
    app = App()
    if os.environ.get("STANDIN_APP_DB") == "true":
        db.connect(os.environ["SPIFFWORKFLOW_BACKEND_DATABASE_URI"])
    return app
