"""Ask the Celery worker itself whether it is alive: Celery's own broadcast ``ping``, run by the
backend's python.

spiffctl does not ship Celery and must not speak its mailbox protocol by hand: the one program
that surely speaks it like the worker is Celery in the backend's own venv, the venv the worker
runs from. So a short child program is run by ``<backend root>/.venv/bin/python`` (where the
image has it, and where ``bin/start_celery_worker`` finds ``celery`` when it execs it directly);
it does ``Celery(broker=URL).control.ping(destination=[<node>], timeout=T, limit=1)`` and prints
one JSON line. No backend app is imported: creating the app costs seconds.

The node name is computed the way ``celery worker`` computes its own default (no ``-n`` in the
backend's script): ``celery@<hostname>``, or ``CELERY_WORKER_HOSTNAME`` (the worker CLI reads it
through Click's ``CELERY_`` prefix) expanded with ``%h`` etc. The healthcheck runs in the
worker's container with the worker's environment, so both sides see the same host and variable.

The broker URL travels in the child's environment (:data:`BROKER_VAR`), never in its argv,
which any user can read with ``ps``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BROKER_VAR = "SPIFFCTL_PING_BROKER_URL"
# Seconds the worker gets to answer. Celery's own `inspect ping` waits 1 s; a worker's main process
# answers from its event loop in milliseconds even when every pool process is busy.
PING_TIMEOUT = 0.8
# The child's own cost on top of the ping: interpreter start-up, `import celery`, connecting to the
# broker (docs/figures.md#h1: half of this on an idle machine, all of it with both cores busy). It also bounds
# the child: it ends itself PING_TIMEOUT + START_ALLOWANCE after it started, whatever happens.
START_ALLOWANCE = 0.6
# Left between the end of the ping and the caller's deadline: the child's exit, the verdict printed.
RESERVE = 0.1
# Never ask for a ping shorter than this, even late: a shorter wait says nothing about the worker.
MIN_TIMEOUT = 0.2

Kind = Literal["pong", "silent", "odd", "broker", "no-celery", "no-python", "failed"]

# Run with `python -I`: PYTHONPATH and friends meant for spiffctl must not change what it imports.
# The interval timer ends the child even when nobody waits for it any more (the healthcheck's own
# bound may have exited spiffctl with os._exit). `done` leaves with os._exit: the answer is out, and
# the interpreter's teardown (kombu closing its pool) would eat into the healthcheck's bound.
PROGRAM = f"""\
import json, os, signal, sys, time
signal.setitimer(signal.ITIMER_REAL, float(sys.argv[3]))
def done(result, **more):
    print(json.dumps(dict(result=result, **more)), flush=True)
    os._exit(0)
try:
    from celery import Celery
    from celery.utils.nodenames import default_nodename, host_format
except ImportError as e:
    done("no-celery", detail=str(e))
# CLOCK_MONOTONIC is one clock for every process: the caller's deadline holds here, and what the
# imports cost (more on a busy machine) comes out of the ping's time, not past the deadline.
timeout = max({MIN_TIMEOUT}, min(float(sys.argv[1]), float(sys.argv[2]) - time.monotonic() - {RESERVE}))
node = host_format(default_nodename(os.environ.get("CELERY_WORKER_HOSTNAME") or None))
app = Celery(broker=os.environ.pop("{BROKER_VAR}"), set_as_current=False)
# Fail at once when the broker is down, instead of kombu's default retries (seconds).
app.conf.broker_connection_timeout = timeout
app.conf.broker_transport_options = dict(max_retries=0)
try:
    replies = app.control.ping(destination=[node], timeout=timeout, limit=1)
except Exception as e:
    done("broker", node=node, detail=type(e).__name__ + ": " + str(e))
answer = next((r[node] for r in replies if node in r), None)
kind = "silent" if answer is None else "pong" if answer == dict(ok="pong") else "odd"
done(kind, node=node, detail=str(answer), waited=timeout)
"""


@dataclass(frozen=True)
class Reply:
    kind: Kind
    node: str = ""  # the node pinged, once the child could compute it
    detail: str = ""  # may hold driver text: the caller redacts it before showing it
    waited: float = 0.0  # the ping's timeout: PING_TIMEOUT, or less when the deadline was near


def venv_python(backend_dir: Path) -> Path:
    """The backend venv's python: the backend's scripts assume ``<root>/.venv`` (the image's ``/app/.venv``)."""
    return backend_dir / ".venv" / "bin" / "python"


def ping(python: Path, broker_url: str, env: Mapping[str, str], deadline: float | None = None) -> Reply:
    """Run :data:`PROGRAM` with ``python``; never raises. The ping waits :data:`PING_TIMEOUT`, cut
    short to end by ``deadline`` (``time.monotonic()``); the child ends within
    ``PING_TIMEOUT + START_ALLOWANCE`` in any case."""
    if not os.access(python, os.X_OK):
        return Reply("no-python", detail=str(python))
    limit = PING_TIMEOUT + START_ALLOWANCE
    until = float("inf") if deadline is None else deadline
    try:
        done = subprocess.run(
            [str(python), "-I", "-c", PROGRAM, f"{PING_TIMEOUT:g}", repr(until), f"{limit:g}"],
            env={**env, BROKER_VAR: broker_url},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Reply("failed", detail=f"the ping program did not finish within {limit:g} s")
    except OSError as e:  # executable, yet not runnable: a broken #! line, a missing interpreter behind a link
        return Reply("failed", detail=f"{python} cannot run: {e.strerror}")
    return parse(done.stdout, done.returncode, done.stderr)


def parse(stdout: bytes, code: int, stderr: bytes = b"") -> Reply:
    """The child's JSON line, or what went wrong when there is none."""
    for line in reversed(stdout.decode("utf-8", "replace").splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("result") in _KINDS:
            waited = data.get("waited")
            return Reply(
                data["result"],
                str(data.get("node") or ""),
                str(data.get("detail") or ""),
                float(waited) if isinstance(waited, (int, float)) else 0.0,
            )
    last = next(iter(reversed(stderr.decode("utf-8", "replace").strip().splitlines())), "")
    how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
    return Reply("failed", detail=f"the ping program {how}" + (f": {last}" if last else ""))


_KINDS = ("pong", "silent", "odd", "broker", "no-celery")
