"""``spiffctl status``: one line per role of the running all-in-one, like ``gitlab-ctl status``.

Read over supervisord's XML-RPC on the private unix socket in the run dir (0700; socket 0700),
so it works for the user that runs the container and nobody else, without a password.

Exit codes: 0 every role RUNNING · 1 some role is not RUNNING (starting, restarting, stopping) ·
3 nothing runs (LSB's "program is not running", as ``systemctl status`` and init scripts use).
"""

from __future__ import annotations

import socket
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any

from spiffctl import state
from spiffctl.errors import CHECK_FAILED, OK
from spiffctl.supervisor import SOCKET_NAME

NOT_RUNNING = 3
TIMEOUT = 5.0


def uptime(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def line(info: dict[str, Any]) -> str:
    name = str(info.get("name", "?"))
    statename = str(info.get("statename", "?"))
    if statename == "RUNNING":
        detail = f"pid {info.get('pid')}, uptime {uptime(float(info.get('now', 0)) - float(info.get('start', 0)))}"
    else:
        detail = str(info.get("description") or info.get("spawnerr") or "").strip() or "-"
    return f"{name:<11} {statename:<9} {detail}"


def connect(path: Path) -> Any:
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, serverurl=f"unix://{path}")
    return xmlrpc.client.ServerProxy("http://localhost", transport=transport)


def status() -> int:
    path = state.run_dir(create=False) / SOCKET_NAME
    nothing = (
        f"spiffctl: nothing runs: no all-in-one supervisor answers on {path} "
        f"(start one with `spiffctl run --role all`; {state.RUN_DIR_VAR} must match)"
    )
    if not path.exists():
        print(nothing, file=sys.stderr)
        return NOT_RUNNING
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(TIMEOUT)
    try:
        proxy = connect(path)
        infos = proxy.supervisor.getAllProcessInfo()
        supervisor_state = proxy.supervisor.getState().get("statename", "?")
        try:
            outcome = proxy.spiffctl.getOutcome()
        except xmlrpc.client.Fault:
            outcome = {}
    except (OSError, xmlrpc.client.Error):
        # A stale socket (supervisor gone) or one shutting down right now.
        print(nothing, file=sys.stderr)
        return NOT_RUNNING
    finally:
        socket.setdefaulttimeout(previous)
    for info in infos:
        print(line(info))
    if supervisor_state != "RUNNING":
        reason = f": {outcome['message']}" if outcome.get("message") else ""
        print(f"spiffctl: supervisor is {supervisor_state.lower()}{reason}")
    ok = supervisor_state == "RUNNING" and infos and all(i.get("statename") == "RUNNING" for i in infos)
    return OK if ok else CHECK_FAILED
