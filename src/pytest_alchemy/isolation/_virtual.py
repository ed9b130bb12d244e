"""Virtual driver connections: what a routed engine's pool holds during a run.

Each behaves like an independent DBAPI connection (PEP 249): its transaction begins
implicitly with its first statement and ends with ``commit()`` or ``rollback()``; in
autocommit mode each statement is kept at once. Underneath, every one runs on the
ledger's shared connection: its transaction is a savepoint, and the transaction control
and savepoints that drivers, SQLAlchemy and applications send as SQL (``BEGIN``,
``COMMIT``, ``SAVEPOINT x``...) are carried out on that savepoint. Everything above the
driver (SQLAlchemy's ``Connection``, its events, ``Session``, ``raw_connection()``,
driver cursors) is SQLAlchemy's own, untouched.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from typing import Any

from .._errors import IsolationError
from ._ledger import PENDING, RELEASED, Entry, Ledger, Scope
from ._sql import control, first_word, may_write


class VirtualTransaction:
    """One transaction of a virtual connection: a savepoint, and the application's own
    savepoints inside it, by name."""

    def __init__(self, conn: VirtualConnection, thread: threading.Thread, gated: bool) -> None:
        self.conn = conn
        self.thread = thread
        self.gated = gated
        self.base: Entry | None = None
        self.savepoints: list[tuple[str, Entry]] = []

    @property
    def label(self) -> str:
        return self.conn.label

    def lose(self, reason: str) -> None:
        """The ledger rolled this transaction back from under its connection."""
        self.conn._lost(self, reason)

    def ended(self) -> None:
        """The ledger carried out this transaction's pending rollback."""
        self.conn._ended(self)


class VirtualConnection:
    """A DBAPI connection whose transactions are savepoints of the shared connection."""

    def __init__(self, ledger: Ledger, label: str) -> None:
        self._ledger = ledger
        self.engine_label = label
        #: Set by the session that uses it (``db_session``, "a Session of ..."), for messages.
        self.session_label: str | None = None
        self._transaction: VirtualTransaction | None = None
        self._autocommit = False
        self._closed = False
        self._lost_reason: str | None = None
        #: The scope it was checked out in: used after that scope ended, it refuses.
        self.stamp: Scope | None = None
        #: Set by the pool's reset event, just before it rolls back on return.
        self.resetting = False

    @property
    def label(self) -> str:
        if self.session_label:
            return f"{self.session_label} (on {self.engine_label})"
        return f"a connection of {self.engine_label}"

    def __repr__(self) -> str:
        return f"<pytest-alchemy virtual connection: {self.label}>"

    # -- state -------------------------------------------------------------------------

    def _lost(self, transaction: VirtualTransaction, reason: str) -> None:
        if self._transaction is transaction:
            self._transaction = None
            self._lost_reason = reason
            self._leave_gate(transaction)

    def _ended(self, transaction: VirtualTransaction) -> None:
        self._ledger.transactions.discard(transaction)
        if self._transaction is transaction:
            self._transaction = None
            self._leave_gate(transaction)

    def _check(self) -> None:
        if self._closed:
            raise IsolationError(f"pytest-alchemy: {self.label} is closed")
        stamp = self.stamp
        if stamp is not None and not stamp.alive:
            raise IsolationError(
                f"pytest-alchemy: {self.label}, checked out during {stamp.label}, was used "
                f"after that ended, from thread {threading.current_thread().name!r}; its "
                "writes would have landed in another test.\nFix: close connections and "
                "sessions (and join threads) before the test or fixture that opened them ends."
            )
        if self._lost_reason is not None:
            reason, self._lost_reason = self._lost_reason, None
            raise IsolationError(
                f"pytest-alchemy: {self.label} was in a transaction that no longer exists "
                f"(used from thread {threading.current_thread().name!r}): {reason}.\n"
                "Fix: end transactions (commit, rollback or close) within the scope that "
                "began them; roll back (session.rollback()) to carry on."
            )

    def _leave_gate(self, transaction: VirtualTransaction) -> None:
        if transaction.gated:
            self._ledger.gate_leave(transaction.thread)

    # -- transactions --------------------------------------------------------------------

    def _begin(self, gated: bool = False) -> VirtualTransaction:
        """The open transaction, begun if there is none (``gated``: this thread has
        entered the ledger's gate for it, see :meth:`run`)."""
        transaction = self._transaction
        if transaction is None:
            transaction = VirtualTransaction(self, threading.current_thread(), gated)
            transaction.base = self._ledger.begin(transaction)
            self._transaction = transaction
        elif gated and not transaction.gated:
            transaction.gated = True
            transaction.thread = threading.current_thread()
        return transaction

    def _end(self, *, commit: bool, defer: bool = False) -> None:
        transaction = self._transaction
        if transaction is None or transaction.base is None:
            return
        ledger = self._ledger
        if commit:
            ledger.release(transaction.base)
        else:
            outcome = ledger.rollback(
                transaction.base, transaction, keep=False, describe=self.label, defer=defer
            )
            if outcome == PENDING:
                # Over for this connection; the ledger carries the rollback out later.
                self._transaction = None
                self._leave_gate(transaction)
                return
        self._transaction = None
        ledger.transactions.discard(transaction)
        self._leave_gate(transaction)

    def commit(self) -> None:
        with self._ledger.mutex:
            self._check()
            self._end(commit=True)

    def rollback(self) -> None:
        # The pool's reset on return may not raise (SQLAlchemy would log and swallow it):
        # a refusal there is reported after the test instead.
        defer, self.resetting = self.resetting, False
        self._rollback(defer=defer)

    def _rollback(self, *, defer: bool) -> None:
        with self._ledger.mutex:
            if self._lost_reason is not None:  # nothing left to roll back: carry on
                self._lost_reason = None
                return
            if self._closed:
                return
            self._end(commit=False, defer=defer)

    def close(self) -> None:
        with self._ledger.mutex:
            if self._closed:
                return
            try:
                self._rollback(defer=True)
            finally:
                self._closed = True
                self._lost_reason = None

    def _finish_pending_rollback(self) -> None:
        """The driver believes this connection's last rollback done; it was refused.
        Before anything else runs on it, it is carried out, or refused again."""
        transaction = self._transaction
        base = transaction.base if transaction is not None else None
        if base is not None and base.rollback_pending:
            self._end(commit=False)

    def _savepoint(self, action: str, name: str, gated: bool) -> None:
        transaction = self._begin(gated)
        ledger = self._ledger
        if action == "savepoint":
            transaction.savepoints.append((name, ledger.begin(transaction)))
            return
        for index in range(len(transaction.savepoints) - 1, -1, -1):
            if transaction.savepoints[index][0] == name:
                break
        else:
            raise IsolationError(f"pytest-alchemy: no savepoint named {name!r} in {self.label}")
        entry = transaction.savepoints[index][1]
        if action == "release":
            del transaction.savepoints[index:]
            ledger.release(entry)
        else:
            outcome = ledger.rollback(entry, transaction, keep=True, describe=self.label)
            del transaction.savepoints[index + (1 if outcome != RELEASED else 0) :]

    # -- statements ----------------------------------------------------------------------

    def run(self, cursor: Any, method: str, sql: Any, args: tuple[Any, ...], kw: Any) -> bool:
        """Run a statement of ``cursor``; returns False when it was transaction control
        carried out by the plugin (the cursor then has no result)."""
        ledger = self._ledger
        # Threads other than pytest's take turns between transactions that write: wait
        # (outside the mutex) before this thread's transaction writes for the first time.
        # Transactions that only read never wait, so a session left open after a read
        # holds no one up.
        transaction = self._transaction
        gated = (
            threading.current_thread() is not ledger.home_thread
            and not self._autocommit
            and (transaction is None or not transaction.gated)
            and _may_write(sql)
            and ledger.gate_enter()
        )
        try:
            return self._run(cursor, method, sql, args, kw, gated)
        finally:
            if gated and (self._transaction is None or not self._transaction.gated):
                ledger.gate_leave(threading.current_thread())

    def _run(
        self, cursor: Any, method: str, sql: Any, args: tuple[Any, ...], kw: Any, gated: bool
    ) -> bool:
        ledger = self._ledger
        with ledger.mutex:
            self._check()
            text = sql if isinstance(sql, str) else None
            word = first_word(text) if text is not None else ""
            command = control(text, word) if text is not None else None
            if command is not None:
                if command.action == "begin":
                    self._begin(gated)
                elif command.action in ("commit", "rollback"):
                    self._end(commit=command.action == "commit")
                else:
                    self._savepoint(command.action, command.name, gated)
                return False
            writes = text is None or may_write(word, text)
            if text is not None and ledger.driver.implicit_commit(word, text):
                raise IsolationError(
                    f"pytest-alchemy: {self.label} sent {text.strip()[:80]!r}, which "
                    f"{ledger.driver.dialect.name} commits implicitly: it would end the test "
                    "transaction and keep everything written so far. It was not run.\nFix: "
                    "create tables, indexes and locks in the schema build (migrations or "
                    "metadata), use CREATE TEMPORARY TABLE, or DELETE instead of TRUNCATE."
                )
            ledger.ensure_context(writes)
            self._finish_pending_rollback()
            if self._autocommit and self._transaction is None:
                writer: Any = _AUTOCOMMIT
                interleaved = True
            else:
                transaction = self._begin(gated)
                writer = transaction
                innermost = transaction.savepoints[-1][1] if transaction.savepoints else None
                interleaved = not ledger.is_top(innermost or transaction.base)  # type: ignore[arg-type]
            if writes:
                ledger.record_write(writer)
            real = cursor._real
            if interleaved:
                with ledger.statement_savepoint():
                    getattr(real, method)(sql, *args, **kw)
            else:
                getattr(real, method)(sql, *args, **kw)
            if ledger.driver.buffer_results and real.description is not None:
                cursor._rows = collections.deque(real.fetchall())
            else:
                cursor._rows = None
            ledger.check_breach(text or "")
            return True

    def cursor(self, *args: Any, **kw: Any) -> VirtualCursor:
        # Checked when a statement runs (an error raised here would reach the
        # application wrapped in SQLAlchemy's StatementError).
        with self._ledger.mutex:
            return VirtualCursor(self, self._ledger.dbapi().cursor(*args, **kw))

    # -- everything else is the driver connection's --------------------------------------

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger.dbapi(), name)


def _may_write(sql: Any) -> bool:
    if not isinstance(sql, str):
        return True
    word = first_word(sql)
    return control(sql, word) is None and may_write(word, sql)


class _Autocommit:
    label = "an AUTOCOMMIT connection"


_AUTOCOMMIT = _Autocommit()


class VirtualCursor:
    """A driver cursor whose statements go through its virtual connection."""

    def __init__(self, conn: VirtualConnection, real: Any) -> None:
        self._conn = conn
        self._real = real
        self._empty = False  # the last statement was transaction control
        self._rows: collections.deque[Any] | None = None  # read at once (see Driver)

    @property
    def connection(self) -> VirtualConnection:
        return self._conn

    def execute(self, sql: Any, *args: Any, **kw: Any) -> Any:
        self._empty = not self._conn.run(self, "execute", sql, args, kw)
        return self

    def executemany(self, sql: Any, *args: Any, **kw: Any) -> Any:
        self._empty = not self._conn.run(self, "executemany", sql, args, kw)
        return self

    def callproc(self, *args: Any, **kw: Any) -> Any:
        with self._conn._ledger.mutex:
            self._conn._ledger.ensure_context(True)
            return self._real.callproc(*args, **kw)

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
            self._real.close()

    def __enter__(self) -> VirtualCursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


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
        self._autocommit = bool(value)

    @property
    def info(self) -> _PsycopgInfo:
        return _PsycopgInfo(self)


class MySQLConnection(VirtualConnection):
    """PyMySQL and mysqlclient: ``autocommit(flag)`` and ``get_autocommit()``."""

    def autocommit(self, value: bool) -> None:
        if value and self._transaction is not None:
            self.commit()  # as SET autocommit = 1 does
        self._autocommit = bool(value)

    def get_autocommit(self) -> bool:
        return self._autocommit


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
        for line in script.splitlines(keepends=True):
            statement += line
            if sqlite3.complete_statement(statement):
                cursor.execute(statement)
                statement = ""
        if statement.strip():
            cursor.execute(statement)
        return cursor


_CLASSES: dict[str, type[VirtualConnection]] = {
    "postgresql": PsycopgConnection,
    "mysql": MySQLConnection,
    "mariadb": MySQLConnection,
    "sqlite": SQLiteConnection,
}


def virtual_class(dialect_name: str) -> type[VirtualConnection]:
    """The virtual connection class for a backend's drivers."""
    return _CLASSES.get(dialect_name, VirtualConnection)
