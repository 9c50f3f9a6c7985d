"""A private Redis (``PrivateRedis``): no persistence, optional password and memory limits."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from tests.support.servers.base import PrivateServer, find_binary


class PrivateRedis(PrivateServer):
    """A private ``redis-server`` on a free port: no RDB snapshots, no AOF by default.

    ``requirepass`` sets the default user's password (:attr:`url` carries it); ``maxmemory`` and
    ``maxmemory_policy`` map to the same-named settings; ``config`` adds raw directives.
    """

    name = "redis"
    stop_signal = signal.SIGTERM

    def __init__(
        self,
        *,
        port: int | None = None,
        requirepass: str | None = None,
        maxmemory: str | None = None,
        maxmemory_policy: str | None = None,
        config: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(port=port)
        self.password = requirepass
        settings: dict[str, str] = {
            "port": str(self.port),
            "bind": self.host,
            "dir": str(self.dir),
            "save": '""',
            "appendonly": "no",
            "daemonize": "no",
            "protected-mode": "no",
            "logfile": '""',
        }
        if requirepass is not None:
            settings["requirepass"] = _redis_quote(requirepass)
        if maxmemory is not None:
            settings["maxmemory"] = maxmemory
        if maxmemory_policy is not None:
            settings["maxmemory-policy"] = maxmemory_policy
        settings.update(config or {})
        self.config_path = self.dir / "redis.conf"
        self.config_path.write_text("".join(f"{k} {v}\n" for k, v in settings.items()))

    @property
    def url(self) -> str:
        return self.url_for(0)

    def url_for(self, db: int = 0, *, password: str | None = None) -> str:
        password = self.password if password is None else password
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{self.host}:{self.port}/{db}"

    def client(self, db: int = 0, *, password: str | None = None, timeout: float = 3.0) -> Any:
        """A ``redis.Redis`` client for this instance, without retries (redis-py retries by default).

        ``password`` defaults to the instance's; pass ``""`` to connect without one.
        """
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        password = self.password if password is None else password
        return redis.Redis(
            host=self.host,
            port=self.port,
            db=db,
            password=password or None,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def _command(self) -> list[str]:
        return [find_binary("redis-server"), str(self.config_path)]

    def _ping(self) -> bool:
        client = self.client()
        try:
            return bool(client.ping())
        finally:
            client.close()


def _redis_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
