"""The stand-in worker's Celery app: the broker from the backend's variable, no tasks."""

import os

from celery import Celery

app = Celery(broker=os.environ["SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL"])
