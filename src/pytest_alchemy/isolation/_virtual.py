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

import functools
import os
import sysconfig
import threading
from collections.abc import Callable
from typing import Any

from .._errors import IsolationError
from ._cursor import VirtualCursor
from ._ledger import PENDING, RELEASED, Ledger
from ._scope import ORIGIN, Entry, Scope
from ._sql import Statement, classify


class VirtualTransaction:
    """One transaction of a virtual connection: a savepoint, and the application's own
    savepoints inside it, by name."""

    def __init__(self, conn: VirtualConnection, thread: threading.Thread, gated: bool) -> None:
        self.conn = conn
        self.thread = thread
        self.gated = gated
        self.base: Entry | None = None
        self.savepoints: list[tuple[str, Entry]] = []
        #: Whether a statement that may write ran in it.
        self.wrote = False
        #: Savepoints of its that a narrower scope's end took, and why.
        self.lost_savepoints: dict[str, str] = {}

    @property
    def label(self) -> str:
        return self.conn.label

    def lose(self, reason: str) -> None:
        """The ledger rolled this transaction back from under its connection: one that
        only read just ends (its next statement begins another); one that wrote is
        told to its connection's next use."""
        if self.wrote:
            self.conn._lost(self, reason)
        else:
            self.conn._ended(self)

    @property
    def pinned(self) -> bool:
        """Whether its connection has a server-side cursor open, which dies with the
        transaction's savepoint: it cannot be moved above another's."""
        return self.conn.open_named_cursors > 0

    def ended(self) -> None:
        """The ledger carried out this transaction's pending rollback."""
        self.conn._ended(self)

    def lose_savepoint(self, entry: Entry, reason: str) -> None:
        """One of its savepoints was rolled back with a narrower scope (the transaction
        itself goes on): its name is told if the application ends it later."""
        for index, (name, own) in enumerate(self.savepoints):
            if own is entry:
                del self.savepoints[index:]
                self.lost_savepoints[name] = reason
                self.wrote = True  # what it held is gone: no quiet end for it
                return


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
        #: Server-side (named) cursors open on it (psycopg's stream_results).
        self.open_named_cursors = 0

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

    def checked_out(self, scope: Scope) -> None:
        """The pool hands this connection out in ``scope``: it starts clean, as a pooled
        connection does after its reset (what an earlier user left is not this one's)."""
        thread = threading.current_thread()
        origin = self._ledger.thread_origin(thread)
        if origin is not None and not origin.alive and not _pool_worker(thread):
            raise IsolationError(
                f"pytest-alchemy: thread {thread.name!r}, started during {origin.label}, "
                f"asked {self.engine_label} for a connection after that ended; what it "
                "writes would land in another test.\nFix: join the thread (or stop its "
                "work) before the test or fixture that started it ends, or start it in a "
                "fixture of the scope it serves."
            )
        started = ORIGIN.get()
        if started is not None and not started.alive:
            raise IsolationError(
                f"pytest-alchemy: a task (or code run in its context) started during "
                f"{started.label} asked {self.engine_label} for a connection after that "
                "ended; what it writes would land in another test.\nFix: await or cancel "
                "the task before the test or fixture that started it ends (with a wider "
                "event loop scope, tasks outlive the test that made them)."
            )
        with self._ledger.mutex:
            self._lost_reason = None
            if self._transaction is not None:
                self._rollback(defer=True)
            self.resetting = False
            self.stamp = scope

    def _ended(self, transaction: VirtualTransaction) -> None:
        self._ledger.transactions.discard(transaction)
        if self._transaction is transaction:
            self._transaction = None
            self._leave_gate(transaction)

    def _check(self) -> None:
        if self._closed:
            raise IsolationError(f"pytest-alchemy: {self.label} is closed")
        stamp = self.stamp
        if (
            stamp is not None
            and not stamp.alive
            and threading.current_thread() is not self._ledger.home_thread
        ):
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
            self._ledger.gate.leave(transaction.thread)

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
        self.resetting = False  # a pool that resets with commit
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
            why = transaction.lost_savepoints.pop(name, None)
            if why is not None and action == "rollback_to":
                # What it held is undone already; it stays, as after a ROLLBACK TO.
                transaction.savepoints.append((name, ledger.begin(transaction)))
                return
            if why is not None:
                raise IsolationError(
                    f"pytest-alchemy: the savepoint {name!r} of {self.label} no longer "
                    f"exists: {why} (the savepoint was begun there and left open), so "
                    "what was written in it is undone, not kept.\nFix: "
                    "end savepoints (begin_nested()) within the test or fixture that begins "
                    "them."
                )
            raise IsolationError(f"pytest-alchemy: no savepoint named {name!r} in {self.label}")
        entry = transaction.savepoints[index][1]
        if action == "release":
            del transaction.savepoints[index:]
            ledger.release(entry)
        else:
            outcome = ledger.rollback(entry, transaction, keep=True, describe=self.label)
            del transaction.savepoints[index + (1 if outcome != RELEASED else 0) :]

    # -- statements ----------------------------------------------------------------------

    def run(self, sql: Any, action: Callable[[], Any]) -> tuple[bool, Any]:
        """Run a statement: ``action`` sends ``sql`` on a cursor of the shared connection
        once the statement's place is ready (the layers of the scope it runs in, this
        connection's transaction). Returns ``(False, None)`` when the statement was
        transaction control that the plugin carried out itself, else ``(True, result of
        action)``."""
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
            and ledger.gate.enter()
        )
        try:
            return self._run(sql, action, gated)
        finally:
            if gated and (self._transaction is None or not self._transaction.gated):
                ledger.gate.leave(threading.current_thread())

    def _run(self, sql: Any, action: Callable[[], Any], gated: bool) -> tuple[bool, Any]:
        ledger = self._ledger
        with ledger.mutex:
            text = sql if isinstance(sql, str) else None
            statement = classify(text) if text is not None else None
            word = statement.word if statement is not None else ""
            command = statement.control if statement is not None else None
            if (
                command is not None
                and command.action in ("rollback", "rollback_to")
                and self._lost_reason is not None
            ):
                self._lost_reason = None  # what it would undo is undone already
                return False, None
            self._check()
            if command is not None:
                if command.action in ("begin", "savepoint"):
                    # Its savepoint goes above the layers of the scope it runs in.
                    ledger.ensure_context(False)
                    ledger.drop_spare()
                if command.action == "begin":
                    self._begin(gated)
                elif command.action == "autocommit":
                    self.set_autocommit(command.name == "on")
                elif command.action in ("commit", "rollback"):
                    self._end(commit=command.action == "commit")
                else:
                    self._savepoint(command.action, command.name, gated)
                return False, None
            writes = statement is None or statement.writes
            if text is not None and statement is not None:
                self._refuse(text, statement)
            ledger.ensure_context(writes)
            ledger.drop_spare()  # not taken by a new layer: this statement lands below it
            self._finish_pending_rollback()
            if self._transaction is None and (
                self._autocommit or (word in _SETTINGS and not writes)
            ):
                # Kept at once; a session setting (SET NAMES, a PRAGMA on reset) begins no
                # transaction, as with the drivers.
                writer: Any = _AUTOCOMMIT
                interleaved = True
            else:
                transaction = self._begin(gated)
                writer = transaction
                innermost = transaction.savepoints[-1][1] if transaction.savepoints else None
                interleaved = not ledger.is_top(innermost or transaction.base)  # type: ignore[arg-type]
            if writes:
                ledger.record_write(writer)
                if writer is self._transaction and self._transaction is not None:
                    self._transaction.wrote = True
            if word == "call":
                ledger.suspect = (text or "", ledger.context().who)
            try:
                if interleaved:
                    with ledger.statement_savepoint():
                        result = action()
                else:
                    result = action()
            except Exception:
                ledger.check_breach(text or "")  # a failure may end it too
                raise
            ledger.check_breach(text or "")
            return True, result

    def _refuse(self, text: str, statement: Statement) -> None:
        """Refuse, before they run, statements that would end the shared transaction."""
        driver = self._ledger.driver
        if driver.implicit_commit(statement.word, text):
            raise IsolationError(
                f"pytest-alchemy: {self.label} sent {text.strip()[:80]!r}, which "
                f"{driver.dialect.name} commits implicitly: it would end the test "
                "transaction and keep everything written so far. It was not run.\nFix: "
                "create tables, indexes and locks in the schema build (migrations or "
                "metadata), use CREATE TEMPORARY TABLE, or DELETE instead of TRUNCATE."
            )
        if statement.two_phase:
            raise IsolationError(
                f"pytest-alchemy: {self.label} sent {text.strip()[:80]!r}: two-phase "
                "commit and XA transactions end the test transaction; they cannot be "
                "imitated on its shared connection. It was not run.\nFix: test that code "
                "with the database to itself (outside rollback isolation)."
            )
        if statement.hidden_control:
            raise IsolationError(
                f"pytest-alchemy: {self.label} sent {text.strip()[:80]!r}: transaction "
                "control inside a string of several statements would end the test "
                "transaction behind the plugin's back. It was not run.\nFix: send BEGIN, "
                "COMMIT, ROLLBACK and SAVEPOINT statements on their own (or use the "
                "Connection's begin(), commit(), rollback() and begin_nested())."
            )

    def cursor(self, *args: Any, **kw: Any) -> VirtualCursor:
        # Checked when a statement runs (an error raised here would reach the
        # application wrapped in SQLAlchemy's StatementError).
        with self._ledger.mutex:
            named = bool(args and isinstance(args[0], str)) or bool(kw.get("name"))
            return VirtualCursor(self, self._ledger.dbapi().cursor(*args, **kw), named)

    def set_autocommit(self, value: bool) -> None:
        """Switch autocommit as the drivers do: switching it on commits what is open."""
        if value and self._transaction is not None:
            self._end(commit=True)
        self._autocommit = value

    # -- everything else is the driver connection's --------------------------------------

    def __getattr__(self, name: str) -> Any:
        ledger = self._ledger
        value = getattr(ledger.dbapi(), name)
        if not callable(value) or isinstance(value, type):  # exception classes stay as is
            return value

        def locked(*args: Any, **kw: Any) -> Any:
            # Driver calls (sqlite3's create_function on connect...) take their turn too.
            with ledger.mutex:
                return value(*args, **kw)

        return locked


def _pool_worker(thread: threading.Thread) -> bool:
    """Whether a thread runs code of the standard library or of an installed package
    (a thread pool's worker, logging's QueueListener, anyio's worker that Starlette's
    TestClient uses): such threads run what whoever uses them hands them, in whichever
    test that is. Threads that run the project's own code are the ones checked."""
    target: Any = getattr(thread, "_target", None) or type(thread).run
    while isinstance(target, functools.partial):
        target = target.func
    code = getattr(getattr(target, "__func__", target), "__code__", None)
    if code is None:  # a callable object: its __call__
        for cls in type(target).__mro__:
            if "__call__" in vars(cls):
                code = getattr(vars(cls)["__call__"], "__code__", None)
                break
    if code is None:
        return False  # unknown: checked
    return bool(os.path.realpath(code.co_filename).startswith(_LIBRARY_PATHS))


_LIBRARY_PATHS = tuple(
    {
        os.path.realpath(path)
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (path := sysconfig.get_paths().get(key))
    }
)


def _may_write(sql: Any) -> bool:
    return not isinstance(sql, str) or classify(sql).writes


#: First words of statements that change the session, not the data: outside a
#: transaction they begin none.
_SETTINGS = frozenset(("set", "pragma"))


class _Autocommit:
    label = "an AUTOCOMMIT connection"


_AUTOCOMMIT = _Autocommit()
