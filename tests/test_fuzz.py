"""Fuzzing the command line (issue 16): generated environments and argv for run, doctor,
healthcheck and status, each run as a real subprocess against the stand-in backend and the real
services, with a secret planted in URLs, secret-named variables and ``*_FILE`` contents.

Bounded for CI (about a minute); ``bench/fuzz.py`` runs many more and prints counts.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tests.support.fuzzing import Case, cases, judge

EXAMPLES = 250


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_no_traceback_no_internal_error_no_secret(case: Case) -> None:
    verdict = judge(case)
    assert not verdict.hung, f"{case.argv} hung: {verdict.output[-400:]}"
    assert not verdict.traceback, verdict.output[-2000:]
    assert not verdict.internal, verdict.output[-2000:]
    assert not verdict.leaked, verdict.output[-2000:]
