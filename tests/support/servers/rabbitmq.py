"""A private RabbitMQ node (``PrivateRabbitMQ``): several seconds to start, mark its tests ``slow``."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from tests.support.ports import free_port
from tests.support.servers.base import PrivateServer, find_binary


class PrivateRabbitMQ(PrivateServer):
    """A private RabbitMQ node (own node name, AMQP and distribution ports, dirs, cookie).

    No plugins. User ``user`` / ``password`` (default guest/guest) on vhost ``/``; :attr:`url` is
    ``amqp://user:password@127.0.0.1:<port>//``. Takes several seconds to start (Erlang).
    It registers with the machine's ``epmd`` (port 4369) like any node; if no epmd runs, Erlang
    starts one, which then outlives the instance (it is shared, harmless, and not ours to kill).
    """

    name = "rabbitmq"
    stop_signal = signal.SIGTERM
    start_timeout = 60.0

    def __init__(self, *, port: int | None = None, user: str = "guest", password: str = "guest") -> None:
        super().__init__(port=port)
        self.user = user
        self.password = password
        self.dist_port = free_port()
        self.node_name = f"spiffctl-test-{self.port}@localhost"
        for sub in ("mnesia", "log", "home"):
            (self.dir / sub).mkdir()
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.host}:{self.port}\n"
            f"default_user = {user}\n"
            f"default_pass = {password}\n"
            "loopback_users = none\n"
        )

    @property
    def url(self) -> str:
        return self.url_for()

    def url_for(self, *, user: str | None = None, password: str | None = None, vhost: str = "/") -> str:
        user = self.user if user is None else user
        password = self.password if password is None else password
        path = "/" if vhost == "/" else quote(vhost, safe="")
        return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/{path}"

    def _env(self) -> Mapping[str, str]:
        env = dict(os.environ)
        d = self.dir
        env.update(
            HOME=str(d / "home"),
            RABBITMQ_NODENAME=self.node_name,
            RABBITMQ_NODE_IP_ADDRESS=self.host,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_LOGS="-",
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(d / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(d / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(d / "rabbitmq.pid"),
        )
        return env

    def _command(self) -> list[str]:
        # The /usr/sbin wrapper would `su rabbitmq`; the real script runs fine as root.
        real = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        return [str(real) if real.exists() else find_binary("rabbitmq-server")]

    def _ping(self) -> bool:
        import amqp

        conn = amqp.Connection(f"{self.host}:{self.port}", userid=self.user, password=self.password, connect_timeout=2)
        try:
            conn.connect()
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        return True
