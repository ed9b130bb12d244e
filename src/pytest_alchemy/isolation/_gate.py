"""Threads take turns on the shared connection, like pooled connections committing one
after another: a thread other than pytest's waits before its transaction first writes
until no other such thread has a writing transaction open."""

from __future__ import annotations

import threading

from .._errors import IsolationError


class ThreadGate:
    """At most one thread (pytest's excepted) with a writing transaction open at a time;
    a thread waits at most ``timeout`` seconds for its turn."""

    def __init__(self, home_thread: threading.Thread, timeout: float) -> None:
        self.home_thread = home_thread
        self.timeout = timeout
        self._turn = threading.Condition(threading.Lock())
        self._owner: threading.Thread | None = None
        self._depth = 0

    def enter(self) -> bool:
        """Wait for this thread's turn; returns whether it entered (pytest's own thread
        never waits). Raises :class:`IsolationError` after ``timeout`` seconds."""
        thread = threading.current_thread()
        if thread is self.home_thread:
            return False
        with self._turn:
            if not self._turn.wait_for(lambda: self._owner in (None, thread), timeout=self.timeout):
                owner = self._owner
                raise IsolationError(
                    f"pytest-alchemy: thread {thread.name!r} waited {self.timeout:g} s for "
                    f"thread {owner.name if owner else '?'!r} to end its writing "
                    "transaction on the test's shared connection (threads take turns, like "
                    "pooled connections committing one after another). If that thread is "
                    "itself waiting for this one (work handed to other threads while its "
                    "transaction is open), one shared connection cannot do it.\nFix: "
                    "commit (or end) a thread's transaction before it waits for other "
                    "threads' database work, and end each thread's session or connection "
                    "when its work is done."
                )
            self._owner = thread
            self._depth += 1
            return True

    def leave(self, thread: threading.Thread) -> None:
        """One of ``thread``'s writing transactions ended."""
        with self._turn:
            if self._owner is thread:
                self._depth -= 1
                if self._depth <= 0:
                    self._owner, self._depth = None, 0
                    self._turn.notify_all()
