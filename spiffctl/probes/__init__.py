"""One interface for "does this dependency answer?", one small module per dependency kind.

Every probe module exposes ``check(endpoint, timeout) -> Outcome`` and nothing else is required.
A database's probe is its kind's (:mod:`spiffctl.databases`); the others' modules live here.
Modules are imported lazily by kind, so ``spiffctl run --role api`` against PostgreSQL never pays
for importing the Redis or AMQP clients.

An outcome is one of three things, because waiting depends on the difference:

* ``ok`` — it answered and accepted us;
* ``transient`` — not yet (refused, timed out, name not resolvable yet, starting up): retry;
* ``permanent`` — it answered and said no (bad password, unknown database, TLS verification
  failed): retrying cannot help, fail now.
"""

from __future__ import annotations

import importlib
import socket
import sys
import time
from dataclasses import dataclass, field
from enum import Enum
from types import ModuleType

from spiffctl import databases
from spiffctl.config.settings import Endpoint

# The kinds probed by a module under spiffctl.probes of the same name (databases: their kind's).
_MODULES = ("redis", "amqp", "sqs", "http")


class Status(str, Enum):
    OK = "ok"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str  # one line, no secrets: the caller still passes it through the redactor
    facts: dict[str, str] = field(default_factory=dict)  # extra findings, e.g. {"revision": "abc123"}
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


def ok(detail: str = "answered", **facts: str) -> Outcome:
    return Outcome(Status.OK, detail, facts)


def transient(detail: str) -> Outcome:
    return Outcome(Status.TRANSIENT, detail)


def permanent(detail: str) -> Outcome:
    return Outcome(Status.PERMANENT, detail)


def check(endpoint: Endpoint, timeout: float) -> Outcome:
    """Probe ``endpoint`` once, within about ``timeout`` seconds. Never raises."""
    started = time.monotonic()
    try:
        outcome: Outcome = _prober(endpoint.kind).check(endpoint, max(timeout, 0.1))
    except Exception as e:  # a probe bug or an unforeseen driver error must not become a traceback
        outcome = classify_exception(e)
    return Outcome(outcome.status, one_line(outcome.detail), outcome.facts, time.monotonic() - started)


def _prober(kind: str) -> databases.Kind | ModuleType:
    if databases.known(kind):
        return databases.kind(kind)
    if kind not in _MODULES:
        raise KeyError(kind)
    return importlib.import_module(f"spiffctl.probes.{kind}")


def classify_exception(e: BaseException) -> Outcome:
    """Socket-level failures every driver can surface, classified once for all of them."""
    ssl = sys.modules.get("ssl")  # an SSL error implies ssl was imported; do not pay for it otherwise
    if ssl is not None and isinstance(e, ssl.SSLCertVerificationError):
        return permanent(f"TLS certificate verification failed ({e.verify_message})")
    if ssl is not None and isinstance(e, ssl.SSLError):
        return permanent(f"TLS handshake failed ({e.reason or e})")
    if isinstance(e, socket.gaierror):
        return transient(f"host name not resolvable yet ({e.strerror})")
    if isinstance(e, ConnectionRefusedError):
        return transient("connection refused")
    if isinstance(e, (TimeoutError, socket.timeout)):
        return transient("timed out")
    if isinstance(e, (ConnectionError, OSError)):
        return transient(e.strerror or type(e).__name__)
    return permanent(f"{type(e).__name__}: {e}")


def classify_text(text: str, permanent_markers: tuple[str, ...] = ()) -> Outcome:
    """For drivers that report failures as text: permanent when it says we were refused, else transient.

    Refused means any of :data:`REFUSED` (every driver's way of saying "wrong credentials", "no
    such database", "not allowed", "TLS verification failed") or of the driver's own
    ``permanent_markers``. Everything else counts as transient: a wrong guess then costs a timeout
    (exit 69 with the message), while the opposite guess would abort a start that was about to
    succeed.
    """
    low = text.lower()
    detail = one_line(text)
    if any(m in low for m in (*REFUSED, *permanent_markers)):
        return permanent(detail)
    return transient(detail)


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def clause(text: str) -> str:
    """A driver's message, ready for "; <fix>" to follow: "Connection refused." ends a sentence."""
    return one_line(text).rstrip(" .;")


# How drivers say the TLS handshake or the server's certificate was refused.
TLS_FAILURE = ("certificate verify failed", "certificate_verify_failed", "ssl handshake", "tlsv1 alert")
# How servers say "you may not": wrong credentials (the two database servers, Redis, RabbitMQ in
# that order), a database or role that does not exist, a virtual host that is missing or closed to
# this user. Lower case; matched anywhere in the message.
REFUSED = (
    "authentication failed",
    "access denied",
    "invalid username-password pair",
    "access_refused",
    "does not exist",
    "unknown database",
    "not_allowed",
    *TLS_FAILURE,
)
