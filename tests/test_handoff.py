"""The secrets ``run --role all`` resolved reach the PID-1 program across the exec, in memory only,
and no role inherits the way they came."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from spiffctl.allinone import handoff
from tests.support.allinone import base_env, running

SECRETS = ["Tr0ub4dor#horse", "line one\nline two", "é€ key"]


def test_the_secrets_survive_the_exec_and_nothing_of_the_way_is_left():
    take = textwrap.dedent(
        """
        import json, os
        from spiffctl.allinone import handoff
        fd = int(os.environ[handoff.VAR])
        got = sorted(handoff.take(os.environ))
        try:
            os.fstat(fd)
            still_open = True
        except OSError:
            still_open = False
        print(json.dumps({"got": got, "var": os.environ.get(handoff.VAR), "open": still_open}))
        """
    )
    give = (
        "import os, sys\nfrom spiffctl.allinone import handoff\n"
        f"handoff.give({SECRETS!r}, os.environ)\n"
        f"os.execv(sys.executable, [sys.executable, '-c', {take!r}])\n"
    )
    out = subprocess.run([sys.executable, "-c", give], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(out.stdout) == {"got": sorted(SECRETS), "var": None, "open": False}


def test_a_stray_variable_naming_another_descriptor_is_ignored_and_left_open():
    r, w = os.pipe()
    try:
        environ = {handoff.VAR: str(r)}
        assert handoff.take(environ) == set()
        assert handoff.VAR not in environ
        os.fstat(r)  # still open
    finally:
        os.close(r)
        os.close(w)
    assert handoff.take({handoff.VAR: "stdin"}) == set()


def test_no_role_inherits_the_descriptor_or_its_variable(tmp_path):
    env = base_env(tmp_path, SPIFFCTL_LOCK="off", STANDIN_SHOW_ENV=handoff.VAR)
    with running(tmp_path, env, "--no-wait") as run:
        run.wait_for(rf"^api \| api env {handoff.VAR}=$")
        run.wait_for(rf"^background \| background env {handoff.VAR}=$")
        run.terminate()
        assert run.wait(15) == 0
