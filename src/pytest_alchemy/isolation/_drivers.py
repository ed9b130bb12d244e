"""Per-backend facts the shared connection relies on, in a registry keyed by backend name:
how to put the driver connection in the run's transaction, how to tell that the
database ended that transaction, and which statements would end it by themselves."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Final

from ._sql import body


class Driver:
    """What every backend shares: the driver connection is switched to autocommit through
    SQLAlchemy's own dialect (so that it sends nothing of its own) and the plugin begins
    the transaction itself, in SQL."""

    backends: ClassVar[tuple[str, ...]] = ()
    begin_sql: ClassVar[str] = "BEGIN"

    def buffers(self, cursor: Any) -> bool:
        """Whether a cursor's rows must be read at once: a statement still in progress
        until its last row is read would make the savepoints of another connection (or
        thread) fail meanwhile."""
        return False

    def savepoint_missing(self, exc: BaseException) -> bool:
        """Whether a driver error says that a savepoint does not exist (the transaction
        ended behind the plugin's back)."""
        return False

    def __init__(self, dialect: Any) -> None:
        self.dialect = dialect

    def prepare(self, pooled: Any, dbapi: Any, lock_timeout: float) -> None:
        """Make the freshly connected driver connection ready to be shared."""
        self.dialect.set_isolation_level(dbapi, "AUTOCOMMIT")

    def in_transaction(self, dbapi: Any) -> bool | None:
        """Whether the driver connection is inside a transaction (``None``: unknown)."""
        return None

    def implicit_commit(self, word: str, sql: str) -> bool:
        """Whether the statement would commit by itself, ending the test transaction."""
        return False

    @staticmethod
    def run(dbapi: Any, sql: str) -> None:
        cursor = dbapi.cursor()
        try:
            cursor.execute(sql)
        finally:
            cursor.close()


class PostgresDriver(Driver):
    backends = ("postgresql",)

    def prepare(self, pooled: Any, dbapi: Any, lock_timeout: float) -> None:
        super().prepare(pooled, dbapi, lock_timeout)
        # PostgreSQL waits for a lock forever by default.
        self.run(dbapi, f"SET lock_timeout = {int(lock_timeout * 1000)}")

    def savepoint_missing(self, exc: BaseException) -> bool:
        # invalid_savepoint_specification; no_active_sql_transaction
        return getattr(exc, "sqlstate", None) in ("3B001", "25P01")

    def in_transaction(self, dbapi: Any) -> bool | None:
        info = getattr(dbapi, "info", None)
        status = getattr(info, "transaction_status", None)
        return None if status is None else int(status) != 0  # 0: IDLE (psycopg, psycopg2)


#: First words of statements that commit implicitly on MariaDB / MySQL (their manuals'
#: "Statements That Cause an Implicit Commit"), except ``CREATE`` / ``DROP TEMPORARY
#: TABLE``. ``UNLOCK TABLES`` commits only after ``LOCK TABLES``, which is refused.
_MYSQL_IMPLICIT: Final = frozenset(
    (
        "alter", "create", "drop", "rename", "truncate", "lock", "grant", "revoke",
        "analyze", "optimize", "repair", "check", "flush", "reset", "cache", "install",
        "uninstall",
    )
)  # fmt: skip
_TEMPORARY: Final = re.compile(r"\s*(create|drop)\s+temporary\s", re.IGNORECASE)


class MySQLDriver(Driver):
    backends = ("mysql", "mariadb")
    begin_sql = "START TRANSACTION"

    def prepare(self, pooled: Any, dbapi: Any, lock_timeout: float) -> None:
        super().prepare(pooled, dbapi, lock_timeout)
        seconds = max(1, round(lock_timeout))
        self.run(
            dbapi,
            f"SET SESSION innodb_lock_wait_timeout = {seconds}, lock_wait_timeout = {seconds}",
        )

    def buffers(self, cursor: Any) -> bool:
        # Unbuffered (SSCursor, stream_results) results break on the next statement.
        return any(cls.__name__.startswith("SS") for cls in type(cursor).__mro__)

    def savepoint_missing(self, exc: BaseException) -> bool:
        return bool(getattr(exc, "args", None)) and exc.args[0] == 1305

    def in_transaction(self, dbapi: Any) -> bool | None:
        status = getattr(dbapi, "server_status", None)  # PyMySQL: from the last OK packet
        return None if not isinstance(status, int) else bool(status & 1)  # IN_TRANS

    def implicit_commit(self, word: str, sql: str) -> bool:
        return word in _MYSQL_IMPLICIT and not _TEMPORARY.match(body(sql))


class SQLiteDriver(Driver):
    backends = ("sqlite",)

    def buffers(self, cursor: Any) -> bool:
        return True  # "cannot release savepoint - SQL statements in progress"

    def savepoint_missing(self, exc: BaseException) -> bool:
        return "no such savepoint" in str(exc)

    def prepare(self, pooled: Any, dbapi: Any, lock_timeout: float) -> None:
        super().prepare(pooled, dbapi, lock_timeout)
        # Behave like the server databases: foreign keys are enforced.
        self.run(dbapi, "PRAGMA foreign_keys = ON")
        self.run(dbapi, f"PRAGMA busy_timeout = {int(lock_timeout * 1000)}")

    def in_transaction(self, dbapi: Any) -> bool | None:
        return bool(dbapi.in_transaction)


_REGISTRY: dict[str, type[Driver]] = {
    backend: cls for cls in (PostgresDriver, MySQLDriver, SQLiteDriver) for backend in cls.backends
}


def driver_for(dialect: Any) -> Driver:
    """The :class:`Driver` for a dialect (the base one for backends not listed)."""
    return _REGISTRY.get(dialect.name, Driver)(dialect)
