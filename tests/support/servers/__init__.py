"""Private, throw-away server instances for tests, one module per kind of server.

Every class here runs a REAL server binary on a free port of 127.0.0.1, in its own temporary
directory, as its own process group. Nothing in here ever touches the shared services
(PostgreSQL 5432, MariaDB 3306, Redis 6379, RabbitMQ 5672): use those through the fixtures in
``tests/conftest.py``; use a private instance when a test must stop, kill, freeze or misconfigure it.

Usage (``from tests.support.servers.redis import PrivateRedis``)::

    with PrivateRedis(requirepass="s3cret") as redis:   # started on enter
        use(redis.url)                                  # redis://:s3cret@127.0.0.1:<port>/0
        redis.freeze()                                  # SIGSTOP: port open, nothing answers
        redis.thaw()
        redis.kill()                                    # SIGKILL the whole process group
        redis.start()                                   # same port, same data
    # stopped and its directory removed on exit

Every server is a :class:`~tests.support.servers.base.PrivateServer`: ``start()`` (waits,
bounded, until the server answers a real client, raises ``ServerStartError`` with the log tail
otherwise), ``stop()`` (graceful, then SIGKILL after ``timeout``), ``kill()``, ``restart()``,
``freeze()``/``thaw()``, ``cleanup()`` (stop + remove the directory; idempotent).
Instances not cleaned up explicitly are cleaned up at interpreter exit (atexit), and so are the
per-session templates.

Templates: ``initdb`` and ``mariadb-install-db`` run once per process into a template directory;
each instance copies it (``cp -a``), which is much faster than initialising again.

Running as root: PostgreSQL refuses to run as root, so when euid is 0 it runs as the ``postgres``
system user (its directories are chowned to that user); MariaDB runs with ``--user=root``.

Network oddities (a refusing port, a black hole) live in :mod:`tests.support.ports`.
"""
