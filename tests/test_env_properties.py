"""Property-based: whatever the environment holds, settings load without a traceback,
every problem is one line naming a variable, and no planted secret leaks into a problem."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from spiffctl.config.settings import load
from spiffctl.util.errors import ConfigProblems

PLANTED = "PlantedPw9731"
NAMES = [
    "SPIFFWORKFLOW_BACKEND_DATABASE_URI",
    "SPIFFWORKFLOW_BACKEND_DATABASE_TYPE",
    "SPIFFWORKFLOW_BACKEND_DATABASE_PASSWORD",
    "SPIFFWORKFLOW_BACKEND_ENV",
    "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED",
    "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL",
    "SPIFFWORKFLOW_BACKEND_CELERY_RESULT_BACKEND",
    "SPIFFWORKFLOW_BACKEND_CELERY_SQS_URL",
    "SPIFFWORKFLOW_BACKEND_CELERY_RESULT_S3_BUCKET",
    "SPIFFWORKFLOW_BACKEND_PORT",
    "SPIFFWORKFLOW_BACKEND_WSGI_PATH_PREFIX",
    "SPIFFWORKFLOW_BACKEND_RUN_BACKGROUND_SCHEDULER_IN_CREATE_APP",
    "SPIFFWORKFLOW_BACKEND_PROCESS_INSTANCE_METADATA_BACKFILL_ENABLED",
    "FLASK_SESSION_SECRET_KEY",
]
SCHEMES = [
    "postgresql",
    "postgresql+psycopg2",
    "postgres",
    "mysql",
    "mysql+mysqldb",
    "mariadb",
    "sqlite",
    "redis",
    "rediss",
    "amqp",
    "sqs",
    "s3",
    "db+postgresql",
    "rpc",
    "http",
    "",
]

hosts = st.text(alphabet=string.ascii_letters + string.digits + ".-_[]:%@/?#", max_size=20)
ports = st.one_of(
    st.just(""), st.integers(-5, 99999).map(lambda p: f":{p}"), st.text(max_size=6).map(lambda t: ":" + t)
)
urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://user:{PLANTED}@{host}{port}/{path}",
    st.sampled_from(SCHEMES),
    hosts,
    ports,
    st.text(max_size=10),
)
values = st.one_of(urls, st.text(max_size=30), st.sampled_from(["true", "false", "TRUE", "yes", "", "sqlite", "mysql"]))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(NAMES), values, max_size=8))
def test_any_environment_loads_or_fails_with_one_line_problems(tmp_path_factory, env):
    backend = tmp_path_factory.getbasetemp()
    try:
        s = load(env, backend_dir=backend)
    except ConfigProblems as e:  # only secrets files may raise, and none are set here
        raise AssertionError(f"unexpected ConfigProblems: {e.problems}") from None
    for problem in s.problems:
        line = str(problem)
        assert "\n" not in line
        assert problem.variable.startswith(("SPIFFWORKFLOW_BACKEND_", "FLASK_"))
        assert PLANTED not in line
