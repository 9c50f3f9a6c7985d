"""RabbitMQ (``amqp://``, ``amqps://``, ``pyamqp://``): a real AMQP 0-9-1 handshake with py-amqp.

Opening the connection exercises TCP, the protocol header, authentication and the virtual host,
which is everything Celery needs before it can consume.
"""

from __future__ import annotations

import ssl
from urllib.parse import unquote

from spiffctl.config.settings import Endpoint
from spiffctl.probes import Outcome, classify_exception, classify_text, ok, permanent, transient


def connect_args(endpoint: Endpoint, timeout: float) -> dict[str, object]:
    parts = endpoint.parts
    secure = parts.base_scheme == "amqps"
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return {
        "host": f"{parts.host or 'localhost'}:{parts.port or (5671 if secure else 5672)}",
        "userid": parts.username or "guest",
        "password": parts.password or "guest",
        "virtual_host": vhost,
        "connect_timeout": timeout,
        "read_timeout": timeout,
        "write_timeout": timeout,
        "ssl": ssl.create_default_context() if secure else False,
    }


def classify(e: BaseException) -> Outcome:
    import amqp.exceptions as ax

    if isinstance(e, ax.AccessRefused):
        return permanent("authentication refused (ACCESS_REFUSED): check the user and password")
    if isinstance(e, ax.NotAllowed):
        return permanent(f"virtual host not allowed or missing: {e}")
    if isinstance(e, ax.AMQPError):
        return transient(str(e))
    if isinstance(e, OSError):
        return classify_exception(e)
    return classify_text(str(e))


def check(endpoint: Endpoint, timeout: float) -> Outcome:
    import amqp

    conn = amqp.Connection(**connect_args(endpoint, timeout))
    try:
        conn.connect()
        server = conn.server_properties.get("product", "AMQP server")
        version = conn.server_properties.get("version", "")
        return ok(f"handshake with {server} {version}".strip())
    except Exception as e:
        return classify(e)
    finally:
        try:
            conn.collect()  # drop the socket without a close handshake that could block
        except Exception:
            pass
