"""The driver cursor of a virtual connection: its statements go through the connection
(and so through the test's transaction), its rows are read under the shared
connection's lock, or at once where the driver needs it."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._virtual import VirtualConnection


class VirtualCursor:
    """A driver cursor whose statements go through its virtual connection."""

    def __init__(self, conn: VirtualConnection, real: Any, named: bool = False) -> None:
        self._conn = conn
        self._real = real
        self._named = named
        if named:
            conn.open_named_cursors += 1
        self._empty = False  # the last statement was transaction control
        self._rows: collections.deque[Any] | None = None  # read at once (see Driver)

    @property
    def connection(self) -> VirtualConnection:
        return self._conn

    def _send(self, method: str, sql: Any, *args: Any, **kw: Any) -> Any:
        real = self._real

        def action() -> Any:
            result = getattr(real, method)(sql, *args, **kw)
            self._rows = (
                collections.deque(real.fetchall())
                if real.description is not None and self._conn._ledger.driver.buffers(real)
                else None
            )
            return result

        ran, result = self._conn.run(sql, action)
        self._empty = not ran
        return result

    def execute(self, sql: Any, *args: Any, **kw: Any) -> Any:
        return self._returned(self._send("execute", sql, *args, **kw))

    def executemany(self, sql: Any, *args: Any, **kw: Any) -> Any:
        return self._returned(self._send("executemany", sql, *args, **kw))

    def _returned(self, result: Any) -> Any:
        """What the driver's ``execute`` returned: this cursor where it returned its own
        (psycopg, sqlite3), else its value (PyMySQL's row count, which SQLAlchemy's
        MySQL dialects read after ``executemany``)."""
        return self if result is None or result is self._real else result

    def callproc(self, name: str, *args: Any, **kw: Any) -> Any:
        """A stored procedure: run as ``CALL name``, a write that may commit by itself."""
        real = self._real
        ran, result = self._conn.run(f"CALL {name}", lambda: real.callproc(name, *args, **kw))
        self._empty = not ran
        return result

    def copy(self, *args: Any, **kw: Any) -> Any:
        """psycopg's ``COPY``: a write of this connection's transaction."""
        return self._conn.run(None, lambda: self._real.copy(*args, **kw))[1]

    def stream(self, *args: Any, **kw: Any) -> Any:
        """psycopg's ``stream()``: a query of this connection."""
        return self._conn.run(None, lambda: self._real.stream(*args, **kw))[1]

    @property
    def description(self) -> Any:
        return None if self._empty else self._real.description

    @property
    def rowcount(self) -> int:
        return -1 if self._empty else int(self._real.rowcount)

    def fetchone(self) -> Any:
        if self._empty:
            return None
        if self._rows is not None:
            return self._rows.popleft() if self._rows else None
        with self._conn._ledger.mutex:
            return self._real.fetchone()

    def fetchmany(self, size: int | None = None) -> Any:
        if self._empty:
            return []
        if self._rows is not None:
            count = self._real.arraysize if size is None else size
            return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]
        with self._conn._ledger.mutex:
            return self._real.fetchmany() if size is None else self._real.fetchmany(size)

    def fetchall(self) -> Any:
        if self._empty:
            return []
        if self._rows is not None:
            rows, self._rows = list(self._rows), collections.deque()
            return rows
        with self._conn._ledger.mutex:
            return self._real.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchone, None)

    def close(self) -> None:
        with self._conn._ledger.mutex:
            if self._named:
                self._named = False
                self._conn.open_named_cursors -= 1
            self._real.close()

    def __enter__(self) -> VirtualCursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)
