"""What each driver exposes about transactions (autocommit switches, transaction status,
shortcuts that run SQL), answered by the virtual connection instead of the shared one,
in a registry keyed by backend name."""

from __future__ import annotations

from typing import Any

from ._cursor import VirtualCursor
from ._virtual import VirtualConnection

# -- what drivers expose about transactions, answered for the virtual connection ---------


class _PsycopgInfo:
    """``connection.info``, with the virtual connection's transaction status."""

    def __init__(self, conn: PsycopgConnection) -> None:
        self._conn = conn

    @property
    def transaction_status(self) -> int:
        return 2 if self._conn._transaction is not None else 0  # INTRANS / IDLE

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn._ledger.dbapi().info, name)


class PsycopgConnection(VirtualConnection):
    """psycopg (3) and psycopg2: ``autocommit`` and the session characteristics are
    attributes; the characteristics are kept here, never set on the shared connection."""

    isolation_level: Any = None
    read_only: Any = None
    deferrable: Any = None

    @property
    def autocommit(self) -> bool:
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self.set_autocommit(bool(value))

    @property
    def info(self) -> _PsycopgInfo:
        return _PsycopgInfo(self)

    def execute(self, query: Any, params: Any = None, **kw: Any) -> VirtualCursor:
        """psycopg's shortcut: a cursor's statement."""
        cursor = self.cursor()
        cursor.execute(query, params, **kw)
        return cursor

    def transaction(self, *args: Any, **kw: Any) -> Any:
        raise _unsupported(self, "psycopg's transaction()", "begin_nested() or SAVEPOINT")

    def pipeline(self, *args: Any, **kw: Any) -> Any:
        raise _unsupported(self, "psycopg's pipeline()", "plain execute()")


class MySQLConnection(VirtualConnection):
    """PyMySQL and mysqlclient: ``autocommit(flag)`` and ``get_autocommit()``."""

    def autocommit(self, value: bool) -> None:
        self.set_autocommit(bool(value))

    def get_autocommit(self) -> bool:
        return self._autocommit

    def begin(self) -> None:
        """PyMySQL's ``begin()``: a ``BEGIN`` of this connection."""
        self.cursor().execute("BEGIN")

    def query(self, sql: str, unbuffered: bool = False) -> int:
        """PyMySQL's low-level ``query()``: a cursor's statement; returns the row count."""
        cursor = self.cursor()
        cursor.execute(sql)
        return cursor.rowcount


class SQLiteConnection(VirtualConnection):
    """sqlite3: ``isolation_level = None`` is autocommit; ``in_transaction`` tells; the
    connection's own ``execute*`` shortcuts go through a cursor."""

    @property
    def isolation_level(self) -> str | None:
        return None if self._autocommit else ""

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._autocommit = value is None

    @property
    def in_transaction(self) -> bool:
        return self._transaction is not None

    def execute(self, sql: str, *args: Any) -> VirtualCursor:
        return self.cursor().execute(sql, *args)  # type: ignore[no-any-return]

    def executemany(self, sql: str, *args: Any) -> VirtualCursor:
        return self.cursor().executemany(sql, *args)  # type: ignore[no-any-return]

    def executescript(self, script: str) -> VirtualCursor:
        import sqlite3

        cursor = self.cursor()
        statement = ""
        for part in script.split(";"):
            statement += part + ";"
            if sqlite3.complete_statement(statement):
                if statement.strip(" \t\r\n;"):
                    cursor.execute(statement)
                statement = ""
        if statement.strip(" \t\r\n;"):
            cursor.execute(statement)
        return cursor


def _unsupported(conn: VirtualConnection, what: str, instead: str) -> Exception:
    from .._errors import IsolationError

    return IsolationError(
        f"pytest-alchemy: {what} on {conn.label} would manage the test's shared "
        f"transaction directly, which it cannot do safely.\nFix: use {instead} instead."
    )


_CLASSES: dict[str, type[VirtualConnection]] = {
    "postgresql": PsycopgConnection,
    "mysql": MySQLConnection,
    "mariadb": MySQLConnection,
    "sqlite": SQLiteConnection,
}


def virtual_class(dialect_name: str) -> type[VirtualConnection]:
    """The virtual connection class for a backend's drivers."""
    return _CLASSES.get(dialect_name, VirtualConnection)
