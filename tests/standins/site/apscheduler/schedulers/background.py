"""Stand-in for APScheduler's ``BlockingScheduler``: interval jobs run in the calling thread, forever."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class BlockingScheduler:
    def __init__(self) -> None:
        self.jobs: list[list[Any]] = []  # [next run, seconds, function]

    def add_job(self, func: Callable[[], None], trigger: str = "interval", *, seconds: float) -> None:
        self.jobs.append([time.monotonic(), seconds, func])

    def start(self) -> None:
        while True:
            now = time.monotonic()
            for job in self.jobs:
                if now >= job[0]:
                    job[0] = now + job[1]
                    job[2]()
            time.sleep(max(0.0, min(job[0] for job in self.jobs) - time.monotonic()))
