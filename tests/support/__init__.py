"""The test harness: what the tests share, apart from the tests themselves.

* ``servers/``: private, throw-away PostgreSQL, MariaDB, Redis and RabbitMQ instances, one module
  per kind, for tests that stop, freeze or break a server;
* ``shared_services``: the machine's shared servers, each test in its own database or key space;
* ``poll`` (``wait_until``, the one poller), ``ports``, ``procs``: generic helpers;
* ``cli``: running spiffctl as a real subprocess (``Ran``, the doctor JSON contract);
* ``replicas``, ``background_standin``, ``faulty_background``: Background replicas under a lease;
* ``allinone``, ``log_lines``, ``fuzzing``: the all-in-one, log lines, generated inputs.
"""
