"""``spiffctl doctor``: every check for the chosen role(s), as a table or one JSON document.

Exit 0 when nothing failed (warnings allowed), 1 when a check failed, 78 when the configuration
cannot even be read (a ``*_FILE`` secret is missing).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from spiffctl.config.problem import Problem
from spiffctl.config.settings import load
from spiffctl.doctor import engine as doctor
from spiffctl.doctor.checks import CHECKS
from spiffctl.doctor.checks.config import NAME as CONFIGURATION
from spiffctl.roles import get_role, roles_for
from spiffctl.util import bounded, procfs
from spiffctl.util.errors import CHECK_FAILED, CONFIG, OK, ConfigProblems
from spiffctl.util.redact import Redactor

# doctor answers within --timeout plus this, whatever the network does (measured from exec).
SLACK = 0.3


def run(role_name: str, *, backend_dir: Path | None, as_json: bool, timeout: float) -> int:
    started = procfs.exec_time()
    get_role(role_name, allow_all=True)  # unknown role: usage error before anything else
    try:
        settings = load(backend_dir=backend_dir)
    except ConfigProblems as e:
        if not as_json:
            raise
        _print_unreadable(role_name, e)
        return CONFIG
    roles = tuple(roles_for(role_name, celery_enabled=settings.celery_enabled))
    deadline = min(time.monotonic() + timeout, started + timeout + SLACK - doctor.EXIT_MARGIN)
    ctx = doctor.Context(settings=settings, role=role_name, roles=roles, timeout=timeout, deadline=deadline)
    report = doctor.run_checks(CHECKS, ctx, settings.redactor)
    if as_json:
        doctor.write(doctor.to_json(report) + "\n")
    else:
        names = ", ".join(r.name for r in roles)
        header = f"spiffctl doctor: role {role_name}" + (f" ({names})" if role_name != names else "")
        header += f", backend {settings.backend_dir}, timeout {timeout:g} s"
        doctor.write(doctor.to_text(report, encoding=sys.stdout.encoding, header=settings.redactor(header)))
    code = OK if report.ok else CHECK_FAILED
    if report.unfinished:
        bounded.leave(code)  # everything is printed; a stuck driver must not hold the exit
    return code


def _print_unreadable(role_name: str, e: ConfigProblems) -> None:
    """--json promises one document on stdout, even when the configuration cannot be read."""
    scrub = Redactor.for_env(os.environ)
    found = []
    for line in e.problems:
        # secrets.py writes "<variable>...: <what>; <fix>" and never includes a file's content.
        where, colon, rest = line.partition(": ")
        if not colon:  # "NAME and NAME_FILE are both set; unset one of them"
            where, rest = line.split(" ", 1)[0], line
        message, _, fix = rest.partition("; ")
        found.append(Problem(where.split(" ", 1)[0], scrub(message), scrub(fix or "fix the *_FILE variable")))
    report = doctor.Report(role_name, [doctor.findings(CONFIGURATION, found)])
    doctor.write(doctor.to_json(report) + "\n")
