#!/usr/bin/env python3
"""Stand-in for the backend's three bin scripts (all-in-one tests and bench).

Options come from the environment, ``STANDIN_<ROLE>_<NAME>`` first, then ``STANDIN_<NAME>``
(all roles share one environment under ``run --role all``, so per-role names pick one role):

RECORD file      append "<role> start <pid>" (and child/orphan pids) to this file
PRINT text       print this text on stdout after the ready line
SHOW_ENV a,b     print "<role> env NAME=value" for these variables
EXIT_AFTER s     exit after s seconds with EXIT_CODE (default 0)
CHILD 1          start a `sleep` child in the same process group (like `uv run` -> python)
ORPHAN s         double-fork a grandchild that exits after s seconds, orphaned (reaping proof)
LINGER 1         double-fork a grandchild in its own session that never exits
IGNORE_TERM 1    ignore SIGTERM (to test the kill after the grace period)
SHOW_UMASK 1     print "<role> umask NNN"
"""

import os
import signal
import subprocess
import sys
import time

ROLES = {"boot_server_in_docker": "api", "start_blocking_apscheduler": "background", "start_celery_worker": "worker"}
role = os.environ.get("SPIFFCTL_ROLE") or ROLES.get(os.path.basename(sys.argv[0]), "standin")


def opt(name, default=None):
    return os.environ.get(f"STANDIN_{role.upper()}_{name}") or os.environ.get(f"STANDIN_{name}") or default


def record(what):
    path = opt("RECORD")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(fd, f"{role} {what}\n".encode())
        os.close(fd)


def double_fork(seconds):
    if os.fork() == 0:
        if os.fork() == 0:
            os.setsid()
            record(f"orphan {os.getpid()}")
            if seconds is None:
                while True:
                    time.sleep(3600)
            time.sleep(seconds)
            os._exit(0)
        os._exit(0)
    os.wait()


record(f"start {os.getpid()}")
print(f"{role} ready pid={os.getpid()}", flush=True)
print(f"{role} on stderr", file=sys.stderr, flush=True)
if opt("PRINT"):
    print(opt("PRINT"), flush=True)
for name in filter(None, (opt("SHOW_ENV") or "").split(",")):
    print(f"{role} env {name}={os.environ.get(name, '')}", flush=True)
if opt("SHOW_UMASK"):
    mask = os.umask(0)
    os.umask(mask)
    print(f"{role} umask {mask:03o}", flush=True)
if opt("CHILD"):
    child = subprocess.Popen(["sleep", "1000"])
    record(f"child {child.pid}")
if opt("ORPHAN"):
    double_fork(float(opt("ORPHAN")))
if opt("LINGER"):
    double_fork(None)
if opt("IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:

    def stop(signum, frame):
        print(f"{role} got SIGTERM", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)

if opt("EXIT_AFTER"):
    time.sleep(float(opt("EXIT_AFTER")))
    print(f"{role} exiting with {opt('EXIT_CODE', '0')}", flush=True)
    sys.exit(int(opt("EXIT_CODE", "0")))
while True:
    time.sleep(3600)
