"""The one real connection a run's routed engines share: connected on first use, put in
autocommit mode so that the driver sends nothing of its own, and in a transaction that
the plugin begins itself and never commits."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .._errors import IsolationError
from ._drivers import Driver

#: The savepoint under everything, never released: rolled back to at the end of the run,
#: which fails if the transaction ended behind the plugin's back.
ROOT = "pa_run"


class SharedConnection:
    """``connect`` returns a pooled connection (SQLAlchemy's, of the engine whose
    set-up applies); ``lock_timeout`` (seconds) bounds its lock waits."""

    def __init__(self, connect: Callable[[], Any], driver: Driver, lock_timeout: float) -> None:
        self._connect = connect
        self.driver = driver
        self.lock_timeout = lock_timeout
        self._pooled: Any = None
        self._dbapi: Any = None
        #: Counts the connections made (a new one after a breach).
        self.generation = 0
        #: The process the connection belongs to: a forked child (pytest-flask's
        #: live_server, multiprocessing's "fork") would share its socket, or open a
        #: transaction of its own that nobody commits.
        self._pid = os.getpid()

    def _check_process(self) -> None:
        if os.getpid() != self._pid:
            raise IsolationError(
                f"pytest-alchemy: process {os.getpid()}, forked from the pytest process "
                f"{self._pid} (pytest-flask's live_server, multiprocessing with the 'fork' "
                "start method...), used the test's database connection, which belongs to "
                "the pytest process: sharing it would mix both processes' statements, and "
                "a connection of its own would hold its writes in a transaction nobody "
                "commits. It was stopped.\nFix: test the app in the pytest process "
                "(flask_client), or give the other process a database of its own."
            )

    @property
    def connected(self) -> bool:
        return self._dbapi is not None

    def dbapi(self) -> Any:
        """The driver connection, in the run's transaction (connected on first use)."""
        self._check_process()
        if self._dbapi is None:
            pooled = self._connect()
            dbapi = pooled.dbapi_connection
            try:
                self.driver.prepare(pooled, dbapi, self.lock_timeout)
                self._send(dbapi, self.driver.begin_sql)
                self._send(dbapi, f"SAVEPOINT {ROOT}")
            except BaseException:
                pooled.invalidate()
                raise
            self._pooled, self._dbapi = pooled, dbapi
            self.generation += 1
        return self._dbapi

    def run(self, sql: str) -> None:
        """Send plugin SQL (a savepoint statement)."""
        self._send(self.dbapi(), sql)

    _send = staticmethod(Driver.run)

    def ended(self) -> bool:
        """Whether the database says the run's transaction is over."""
        return self._dbapi is not None and self.driver.in_transaction(self._dbapi) is False

    def drop(self) -> None:
        """Let the connection go without a word (its transaction ended already)."""
        pooled, self._pooled, self._dbapi = self._pooled, None, None
        if pooled is not None and os.getpid() == self._pid:
            pooled.invalidate()

    def close(self) -> None:
        """Roll the run's transaction back and close the connection (never reused: its
        session state is the run's)."""
        pooled, self._pooled, self._dbapi = self._pooled, None, None
        if pooled is not None and os.getpid() == self._pid:  # a child leaves it alone
            try:
                pooled.dbapi_connection.rollback()
            finally:
                pooled.invalidate()
