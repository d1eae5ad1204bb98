"""Long work off the request queue: a few worker threads, each job with progress a page can poll.

Adding a large document (reading, chunking, embedding) takes seconds to minutes. Run on the request
queue's own slots, one such upload would hold up everyone else's uploads behind a concurrency limit;
here a job runs on a worker of its own, the page that asked polls its progress (and may go away: the
job still finishes), and other people's uploads start on the other workers at once. The index itself
takes its short write lock only to save (`rag.ingestion`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Report = Callable[[float, str], None]
"""`report(fraction, message)`: how far a job is, for the person waiting on it."""


class Job(Generic[T]):
    """One piece of work: its progress while it runs, then its result or its error."""

    def __init__(self, label: str):
        self.label = label
        self.fraction = 0.0
        self.message = "Waiting for a free worker"
        self.result: T | None = None
        self.error: BaseException | None = None
        self._done = threading.Event()

    def report(self, fraction: float, message: str) -> None:
        self.fraction, self.message = max(0.0, min(1.0, float(fraction))), message

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the job ended within `timeout` seconds."""
        return self._done.wait(timeout)

    def outcome(self) -> T:
        """The result; raises the job's error. Call after `wait()` returned True."""
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class Jobs:
    """A small pool of worker threads for long jobs. At exit the interpreter lets the jobs in flight finish
    (a document's reading is bounded by `parse_timeout_s`); a killed process loses only them, since what
    they write is crash-safe on its own."""

    def __init__(self, workers: int = 2, name: str = "job"):
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name)

    def submit(self, label: str, work: Callable[[Report], T]) -> Job[T]:
        """Start `work(report)` on a free worker (or as soon as one is free); return its job at once."""
        job: Job[T] = Job(label)

        def run() -> None:
            try:
                job.report(0.0, "Starting")
                job.result = work(job.report)
            except BaseException as exc:  # handed to whoever waits on the job
                if not isinstance(exc, Exception):
                    log.exception("job %s failed", label)
                job.error = exc
            finally:
                job._done.set()

        self._pool.submit(run)
        return job

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
