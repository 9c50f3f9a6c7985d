"""What spiffctl makes of the ping child's output when it is not the one JSON line it expects."""

from __future__ import annotations

import json
import signal

from spiffctl import celeryping


def test_the_json_line_wins_over_other_output():
    out = b"a warning on stdout\n" + json.dumps({"result": "silent", "node": "celery@h", "waited": 0.8}).encode()
    assert celeryping.parse(out, 0) == celeryping.Reply("silent", "celery@h", "", 0.8)


def test_no_json_line_names_the_exit_and_the_last_stderr_line():
    reply = celeryping.parse(b"", 1, b"Traceback (most recent call last):\nSyntaxError: invalid syntax\n")
    assert reply == celeryping.Reply("failed", detail="the ping program exited with 1: SyntaxError: invalid syntax")


def test_killed_child_says_by_which_signal():
    reply = celeryping.parse(b"", -signal.SIGALRM)
    assert reply.kind == "failed" and reply.detail == "the ping program was killed by signal 14"


def test_unknown_result_is_not_trusted():
    assert celeryping.parse(json.dumps({"result": "healthy"}).encode(), 0).kind == "failed"
