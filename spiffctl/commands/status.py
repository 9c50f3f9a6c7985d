"""``spiffctl status``: one line per role of the running all-in-one, like ``gitlab-ctl status``.

Read over supervisord's XML-RPC on the private unix socket in the run dir (0700; socket 0700),
so it works for the user that runs the container and nobody else, without a password.

A role whose spiffctl still waits before starting its script (for the schema, or, in the
all-in-one, for the API to answer) is shown as WAITING, with what it waits for.

Exit codes: 0 every role RUNNING · 1 some role is not RUNNING (waiting, starting, stopping) ·
3 nothing runs (LSB's "program is not running", as ``systemctl status`` and init scripts use).
"""

from __future__ import annotations

import json
import socket
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any

from spiffctl import state
from spiffctl.util.errors import CHECK_FAILED, OK

NOT_RUNNING = 3
TIMEOUT = 5.0


def uptime(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def waiting_on(info: dict[str, Any], base: Path) -> str | None:
    """What a RUNNING program still waits for before its script starts (``None``: it runs it)."""
    if info.get("statename") != "RUNNING":
        return None
    where = {state.RUN_DIR_VAR: str(state.role_run_dir(base, str(info.get("name"))))}
    # The same record, read the same way, as `healthcheck` reads: the two never disagree.
    record = state.waiting(where, pid=info.get("pid"))
    return state.waiting_line(record, float(info.get("now", 0))) if record else None


def line(info: dict[str, Any], base: Path) -> str:
    name = str(info.get("name", "?"))
    statename = str(info.get("statename", "?"))
    waiting = waiting_on(info, base)
    if waiting:
        statename, detail = "WAITING", f"pid {info.get('pid')}, {waiting}"
    elif statename == "RUNNING":
        detail = f"pid {info.get('pid')}, uptime {uptime(float(info.get('now', 0)) - float(info.get('start', 0)))}"
        detail += standby_note(info, base)
    else:
        detail = str(info.get("description") or info.get("spawnerr") or "").strip() or "-"
    return f"{name:<11} {statename:<9} {detail}"


def standby_note(info: dict[str, Any], base: Path) -> str:
    """For a Background on standby (another replica holds the lease): ", standby" and how warm it is."""
    record = state.read_json(state.role_run_dir(base, str(info.get("name"))) / state.BACKGROUND_FILE)
    if record is None or record.get("mode") != "standby" or record.get("pid") != info.get("pid"):
        return ""
    from spiffctl.health import warmth

    return ", standby" + warmth(record)


def connect(path: Path) -> Any:
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, serverurl=f"unix://{path}")
    return xmlrpc.client.ServerProxy("http://localhost", transport=transport)


def document(infos: list[dict[str, Any]], supervisor_state: str, outcome: dict[str, Any], base: Path) -> str:
    """``status --json``: each role's state, the supervisor's, how the run ended, the lease's last event."""
    roles = []
    for info in infos:
        name, statename, *_ = line(info, base).split()
        roles.append(
            {"role": name, "state": statename, "pid": info.get("pid") or None, "detail": waiting_on(info, base)}
        )
    background = state.read_json(state.role_run_dir(base, "background") / state.BACKGROUND_FILE) or {}
    lease = background.get("last_event") if isinstance(background.get("last_event"), dict) else None
    doc = {"supervisor": supervisor_state, "roles": roles, "outcome": outcome or None, "lease": lease}
    return json.dumps(doc)


def status(*, as_json: bool = False) -> int:
    path = state.run_dir(create=False) / state.SOCKET_NAME
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
    base = path.parent
    lines = [line(info, base) for info in infos]
    if as_json:
        print(document(infos, supervisor_state, outcome, base))
    for text in [] if as_json else lines:
        print(text)
    if supervisor_state != "RUNNING" and not as_json:
        reason = f": {outcome['message']}" if outcome.get("message") else ""
        print(f"spiffctl: supervisor is {supervisor_state.lower()}{reason}")
    # A role still waiting for the schema or the API is starting, not running.
    ok = supervisor_state == "RUNNING" and infos and all(text.split()[1] == "RUNNING" for text in lines)
    return OK if ok else CHECK_FAILED
