"""The stand-in worker's Celery app (``STANDIN_CELERY=true``): a real Celery worker on the real broker.

It answers Celery's remote control (``ping``) exactly as the backend's worker does, without the
backend app: same broker variable, the backend's serializer settings, no tasks. Run by
``bin/start_celery_worker`` as ``<root>/.venv/bin/python -m celery -A src.standin_celery_worker worker``.
"""

from __future__ import annotations

import os
import signal
import threading

from celery import Celery

app = Celery("standin", broker=os.environ.get("SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL") or "redis://localhost")
app.conf.update(task_ignore_result=True, task_serializer="json", accept_content=["json"], worker_send_task_events=True)

# The stand-ins' safety net (STANDIN_MAX_LIFETIME): a warm shutdown, which also ends the pool
# processes. Imported in the main process before the pool forks; threads do not survive a fork.
_lifetime = float(os.environ.get("STANDIN_WORKER_MAX_LIFETIME") or os.environ.get("STANDIN_MAX_LIFETIME") or 300)
_timer = threading.Timer(_lifetime, os.kill, (os.getpid(), signal.SIGTERM))
_timer.daemon = True
_timer.start()
