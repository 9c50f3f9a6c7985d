"""``spiffctl run --role all``: every role on one box under supervisord, run as PID 1."""
