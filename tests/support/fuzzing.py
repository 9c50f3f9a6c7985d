"""Generated environments and command lines for run, doctor, healthcheck and status, with a
planted secret, and the verdict on one run of spiffctl: shared by tests/test_fuzz.py (bounded,
in CI) and bench/fuzz.py (many more examples, counts only).

Every case plants one secret where a secret lives (a URL's password, raw or percent-encoded; a
secret-named variable; a ``*_FILE``'s content; a URL variable holding the secret instead of a
URL) and checks that no printed form of it comes out, that nothing prints a traceback and that
nothing exits 70 (spiffctl's "internal error").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

from hypothesis import strategies as st

from tests.support.cli import backend_root

ROLES = ("api", "background", "worker", "all")
# Fixed ends make a planted secret impossible to meet by chance in normal output.
SECRET_MIDDLE = "abcXYZ019@:/#?%+&= '\"\\~!$;,[]{}é€"
URL_VARS = (
    "SPIFFWORKFLOW_BACKEND_DATABASE_URI",
    "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL",
    "SPIFFWORKFLOW_BACKEND_CELERY_RESULT_BACKEND",
    "SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL",
    "SPIFFWORKFLOW_BACKEND_CELERY_SQS_URL",
    "SPIFFCTL_LOCK_URL",
)
SCHEMES = ("postgresql", "mysql", "sqlite", "redis", "rediss", "amqp", "sqs", "http", "https", "mariadb", "x")
HOSTS = ("127.0.0.1", "localhost", "", "[::1]", "h" * 70 + ".example", "bad host", "256.1.1.1")
PORTS = ("", ":1", ":5432", ":3306", ":6379", ":5672", ":99999", ":x")
OTHER = {
    "SPIFFCTL_LOCK_TTL": ("", "15", "2", "abc", "-1", "nan", "1e9", " 5"),
    "SPIFFCTL_LOCK": ("", "on", "off", "maybe"),
    "SPIFFCTL_RESTARTS": ("", "0", "3", "-1", "x"),
    "SPIFFCTL_STOP_GRACE": ("", "1", "0", "x"),
    "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED": ("", "true", "false", "yes?"),
    "SPIFFWORKFLOW_BACKEND_DATABASE_TYPE": ("", "sqlite", "postgres", "mysql", "oracle"),
}
FILE_KINDS = ("secret", "fifo", "folder", "missing", "big", "empty", "long name")


@dataclass(frozen=True)
class Case:
    secret: str
    argv: tuple[str, ...]
    env: dict[str, str]
    files: dict[str, str]  # variable -> kind of file (FILE_KINDS), the content being the secret


@st.composite
def url_with(draw: st.DrawFn, secret: str) -> str:
    password = draw(st.sampled_from([secret, quote(secret), quote(secret, safe=""), quote_plus(secret)]))
    user = draw(st.sampled_from(["spiff", "", "u@x"]))
    scheme = draw(st.sampled_from(SCHEMES))
    host, port = draw(st.sampled_from(HOSTS)), draw(st.sampled_from(PORTS))
    path = draw(st.sampled_from(["/spiff", "/0", "", "/" + "d" * 300, "//tmp/x.db"]))
    lead = draw(st.sampled_from(["", " ", "\t"]))
    query = draw(st.sampled_from(["", f"?password={password}", "?ssl=true"]))
    return f"{lead}{scheme}://{user}:{password}@{host}{port}{path}{query}"


@st.composite
def cases(draw: st.DrawFn) -> Case:
    secret = "Zq9" + draw(st.text(SECRET_MIDDLE, min_size=3, max_size=12)) + "Xj7"
    env: dict[str, str] = {}
    files: dict[str, str] = {}
    for name in draw(st.lists(st.sampled_from(URL_VARS), unique=True, max_size=4)):
        value = draw(st.one_of(url_with(secret), st.just(secret)))
        if draw(st.booleans()):
            files[f"{name}_FILE"] = "secret"
            env[f"{name}__CONTENT"] = value  # written into the file by materialize()
        else:
            env[name] = value
    key = draw(st.sampled_from(["plain", "file", "unset"]))
    if key == "plain":
        env["FLASK_SESSION_SECRET_KEY"] = secret
    elif key == "file":
        files["FLASK_SESSION_SECRET_KEY_FILE"] = draw(st.sampled_from(FILE_KINDS))
    for name, values in OTHER.items():
        if draw(st.booleans()):
            env[name] = draw(st.sampled_from(values))
    role = draw(st.sampled_from(ROLES))
    command = draw(st.sampled_from(["run", "doctor", "healthcheck", "status"]))
    argv: tuple[str, ...]
    if command == "run":
        argv = ("run", "--role", role, "--wait-timeout", "0") + (("--no-wait",) if draw(st.booleans()) else ())
    elif command == "doctor":
        argv = ("doctor", "--role", role, "--timeout", "1") + (("--json",) if draw(st.booleans()) else ())
    elif command == "healthcheck":
        argv = ("healthcheck", "--role", role) if draw(st.booleans()) else ("healthcheck",)
    else:
        argv = ("status",)
    return Case(secret, argv, env, files)


def printed_forms(secret: str) -> list[str]:
    forms = [secret, quote(secret), quote(secret, safe=""), quote_plus(secret), repr(secret)[1:-1]]
    forms += [json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]]
    forms += [f.lower() for f in forms if "%" in f]
    return forms


def materialize(case: Case, root: Path) -> dict[str, str]:
    """The environment to run ``case`` with, its files written under ``root``."""
    backend = root / "backend"
    if not backend.exists():
        backend_root(backend)
        # Without a migration history the api does not wait for a schema (up to 30 minutes).
        shutil.rmtree(backend / "migrations")
    env = {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "HOME": str(root),
        "SPIFFCTL_RUN_DIR": str(root / "run"),
        "SPIFFCTL_BACKEND_DIR": str(backend),
        "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": str(backend / "models"),
        "SPIFFWORKFLOW_BACKEND_DATABASE_URI": f"sqlite:///{root / 'db.sqlite3'}",
    }
    env.update({k: v for k, v in case.env.items() if not k.endswith("__CONTENT")})
    for variable, kind in case.files.items():
        name = variable.removesuffix("_FILE")
        env.pop(name, None)
        path = root / f"{name}.{kind.replace(' ', '_')}"
        content = case.env.get(f"{name}__CONTENT", case.secret)
        if kind == "secret":
            path.write_text(content + "\n")
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "folder":
            path.mkdir()
        elif kind == "big":
            path.write_text(content * (70_000 // len(content) + 1))
        elif kind == "empty":
            path.write_text("")
        elif kind == "long name":
            path = root / ("n" * 300)
        env[variable] = str(path)
    return env


@dataclass
class Verdict:
    code: int | None  # None: still running at the timeout (stopped with SIGTERM)
    output: str
    traceback: bool
    internal: bool
    leaked: bool
    hung: bool  # a bounded command (doctor, healthcheck, status) did not end


def judge(case: Case, timeout: float = 20) -> Verdict:
    with tempfile.TemporaryDirectory(prefix="spiffctl-fuzz-") as tmp:
        env = materialize(case, Path(tmp))
        code, output = _run([sys.executable, "-m", "spiffctl", *case.argv], env, timeout)
    return Verdict(
        code=code,
        output=output,
        traceback="Traceback" in output,
        internal=code == 70 or "internal error" in output,
        leaked=any(form in output for form in printed_forms(case.secret)),
        # `run` may wait by design: a Background standby waits for its lease store.
        hung=code is None and case.argv[0] != "run",
    )


def _run(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, str]:
    """Exit code (None when stopped at the timeout) and output; nothing of it is left running."""
    p = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        out, err = p.communicate(timeout=timeout)
        code: int | None = p.returncode
    except subprocess.TimeoutExpired:
        code = None
        os.killpg(p.pid, signal.SIGTERM)  # the all-in-one stops its roles on SIGTERM
        try:
            out, err = p.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
    return code, (out + err).decode("utf-8", "replace")
