"""A reentrant lock handed out in arrival order.

The model has one owner and every generation holds its lock for a whole answer. With a plain
lock, a thread that releases it and asks again at once (a scorecard run going from one question
to the next) can take it straight back while a chat request waits; with this one, the waiting
request is served next, so a long batch of answers delays anyone else by at most one answer.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path


class FairRLock:
    """Like `threading.RLock`, but waiting threads get the lock first-come, first-served."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._count = 0
        self._queue: deque[object] = deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._count += 1
                return True
            if self._owner is None and not self._queue:
                self._owner, self._count = me, 1
                return True
            if not blocking:
                return False
            ticket = object()
            self._queue.append(ticket)
            deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
            try:
                while self._owner is not None or self._queue[0] is not ticket:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        self._queue.remove(ticket)
                        self._cond.notify_all()
                        return False
                    self._cond.wait(remaining)
            except BaseException:  # protects the queue: a waiter interrupted (even by KeyboardInterrupt) leaves it
                if ticket in self._queue:
                    self._queue.remove(ticket)
                    self._cond.notify_all()
                raise
            self._queue.popleft()
            self._owner, self._count = me, 1
            return True

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("cannot release a lock this thread does not hold")
            self._count -= 1
            if self._count == 0:
                self._owner = None
                self._cond.notify_all()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def waiting(self) -> int:
        """Threads queued for the lock now."""
        with self._cond:
            return len(self._queue)


@contextlib.contextmanager
def process_lock(path: Path) -> Iterator[None]:
    """An exclusive `flock` on `path` (made if missing) for the block: one holder at a time across processes, and
    across machines on a filesystem whose locks reach them (NFSv4, EFS). Raises OSError when it cannot be made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
