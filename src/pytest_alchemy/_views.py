"""Views of the test's connection: what a routed engine's ``connect()`` (and the test's
own session) gets during a test.

Each view's transaction is a SAVEPOINT on the one test connection. The ledger ends those
savepoints in an order the database accepts, so that views used side by side behave, as
far as one connection allows, like the independent connections they stand for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection, Engine, NestedTransaction
from sqlalchemy.exc import InvalidRequestError, ResourceClosedError
from sqlalchemy.sql.elements import TextClause

_READING = ("select", "show", "explain", "pragma", "describe", "values")


def _may_write(statement: Any) -> bool:
    """Whether a statement may change data (anything but a plain read, to be safe)."""
    if isinstance(statement, str):
        sql = statement
    elif isinstance(statement, TextClause):
        sql = statement.text
    else:
        return bool(getattr(statement, "is_dml", False) or getattr(statement, "is_ddl", False))
    return not sql.lstrip().lower().startswith(_READING)


class SavepointLedger:
    """The savepoints that views of one test connection hold.

    Production connections are independent; here each view's transaction is a SAVEPOINT
    nested in those opened before it. A view that commits while a later one is still open
    cannot release its savepoint yet (that would release the later one too): its commit
    waits, and is carried out as soon as the savepoints opened after it are gone. A view
    whose savepoint has taken in what a later view committed cannot roll back without
    undoing that too: it is refused with an explanation rather than done silently.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._open: list[NestedTransaction] = []  # in the order they were begun
        self._waiting: list[NestedTransaction] = []
        self._holding_commits: list[NestedTransaction] = []

    def begin(self) -> NestedTransaction:
        self._settle()
        savepoint = self.connection.begin_nested()
        self._open.append(savepoint)
        return savepoint

    def commit(self, savepoint: NestedTransaction) -> None:
        if not savepoint.is_active:
            self._forget(savepoint)
        elif self._innermost(savepoint):
            self._release(savepoint)
            self._settle()
        elif savepoint not in self._waiting:
            self._waiting.append(savepoint)

    def rollback(self, savepoint: NestedTransaction, *, wrote: bool = True) -> None:
        if not savepoint.is_active:
            self._forget(savepoint)
            return
        if not wrote:
            # Nothing of its own to undo: ending it as a commit is the same, and that can
            # wait for later savepoints without undoing what they committed.
            self.commit(savepoint)
            return
        if not self._innermost(savepoint):
            raise InvalidRequestError(
                "pytest-alchemy: a connection of an application engine was rolled back "
                "while a connection opened after it is still in a transaction. In a test "
                "they share one database connection (each transaction a savepoint inside "
                "the previous one), so only the last one opened can roll back. Commit or "
                "close the later connection first."
            )
        if savepoint in self._holding_commits:
            raise InvalidRequestError(
                "pytest-alchemy: a connection of an application engine was rolled back "
                "after a connection opened after it had committed. In a test they share "
                "one database connection, so this rollback would undo that commit too, "
                "which production would keep; it was refused. Let the later connection "
                "commit after this one ends, or use one connection for both."
            )
        savepoint.rollback()
        self._forget(savepoint)
        self._settle()

    def _release(self, savepoint: NestedTransaction) -> None:
        savepoint.commit()
        self._forget(savepoint)
        enclosing = [sp for sp in self._open if sp.is_active]
        if enclosing and enclosing[-1] not in self._holding_commits:
            self._holding_commits.append(enclosing[-1])

    def _forget(self, savepoint: NestedTransaction) -> None:
        for group in (self._open, self._waiting, self._holding_commits):
            if savepoint in group:
                group.remove(savepoint)

    def _innermost(self, savepoint: NestedTransaction) -> bool:
        return self.connection.get_nested_transaction() is savepoint

    def _settle(self) -> None:
        while self._waiting:
            current = self.connection.get_nested_transaction()
            if current is None or current not in self._waiting:
                break
            self._release(current)


class _ViewTransaction:
    """The transaction of a :class:`RoutedConnection`: a savepoint whose commit and
    rollback go through the ledger, whoever calls them (the view, or a Session)."""

    def __init__(self, view: RoutedConnection, savepoint: NestedTransaction) -> None:
        self.connection = view
        self._savepoint = savepoint
        self._ended = False
        self.wrote = False  # whether a statement that may change data ran in it

    @property
    def is_active(self) -> bool:
        return not self._ended and self._savepoint.is_active

    @property
    def is_valid(self) -> bool:
        return self.is_active

    def commit(self) -> None:
        if not self._ended:
            self.connection._end_own_nested(commit=True)
            self.connection._ledger.commit(self._savepoint)
            self._ended = True
        self.connection._transaction_ended(self)

    def rollback(self) -> None:
        if not self._ended:
            self.connection._end_own_nested(commit=False)
            # May refuse (then the transaction stays open).
            self.connection._ledger.rollback(self._savepoint, wrote=self.wrote)
            self._ended = True
        self.connection._transaction_ended(self)

    def close(self) -> None:
        self.rollback()

    def __enter__(self) -> _ViewTransaction:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None and self.is_active:
            self.commit()
        elif self.is_active:
            self.rollback()


class _DBAPIView:
    """What ``view.connection`` gives: the driver connection, except that commit and
    rollback end the view's savepoint rather than the test transaction."""

    def __init__(self, view: RoutedConnection) -> None:
        self._view = view

    def commit(self) -> None:
        self._view.commit()

    def rollback(self) -> None:
        self._view.rollback()

    def close(self) -> None:
        """The view's connection is closed with the view."""

    @property
    def dbapi_connection(self) -> _DBAPIView:
        return self

    @property
    def driver_connection(self) -> _DBAPIView:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._view._connection.connection.dbapi_connection, name)


class RoutedConnection:
    """What a routed engine's ``connect()`` returns during a test.

    It behaves like a fresh ``Connection`` of that engine (``isinstance`` says it is one),
    but runs on the test's connection: its transaction (begun explicitly or by autobegin)
    is a SAVEPOINT, so ``commit()`` releases it, ``rollback()`` returns to it, and
    ``close()`` rolls back what is left uncommitted, as closing a real connection would.
    With ``isolation_level="AUTOCOMMIT"`` each statement is kept at once. Nothing reaches
    past the test's outer transaction.
    """

    def __init__(self, ledger: SavepointLedger, engine: Engine) -> None:
        self._ledger = ledger
        self._connection = ledger.connection
        self._engine = engine
        self._transaction: _ViewTransaction | None = None
        self._nested: list[NestedTransaction] = []
        self._options: dict[str, Any] = {}
        self._closed = False
        self._invalidated = False

    # -- identity -------------------------------------------------------------------------

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        # Code that checks isinstance(conn, Connection) (Session(bind=conn), pandas...)
        # treats the view as the connection it stands for.
        return Connection

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def invalidated(self) -> bool:
        return self._invalidated

    def __repr__(self) -> str:
        return f"<RoutedConnection of {self._engine!r} into {self._connection!r}>"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def _check_open(self) -> None:
        if self._closed:
            raise ResourceClosedError("This Connection is closed")

    # -- transactions ---------------------------------------------------------------------

    @property
    def _autocommit(self) -> bool:
        return self._options.get("isolation_level") == "AUTOCOMMIT"

    def _transaction_ended(self, transaction: _ViewTransaction) -> None:
        if self._transaction is transaction and not transaction.is_active:
            self._transaction = None

    def in_transaction(self) -> bool:
        return self._transaction is not None and self._transaction.is_active

    def get_transaction(self) -> _ViewTransaction | None:
        return self._transaction if self.in_transaction() else None

    def _get_required_transaction(self) -> _ViewTransaction:
        transaction = self.get_transaction()
        if transaction is None:
            raise InvalidRequestError("connection is not in a transaction")
        return transaction

    def get_nested_transaction(self) -> NestedTransaction | None:
        if self._transaction is None or not self.in_transaction():
            return None
        nested = self._connection.get_nested_transaction()
        return None if nested is self._transaction._savepoint else nested

    def _get_required_nested_transaction(self) -> NestedTransaction:
        nested = self.get_nested_transaction()
        if nested is None:
            raise InvalidRequestError("connection is not in a nested transaction")
        return nested

    def in_nested_transaction(self) -> bool:
        return self.get_nested_transaction() is not None

    def begin(self) -> _ViewTransaction:
        self._check_open()
        if self.in_transaction():
            raise InvalidRequestError(
                "This connection has already initialized a SQLAlchemy "
                "Transaction() object via begin() or autobegin; can't call begin() "
                "here unless rollback() or commit() is called first."
            )
        self._transaction = _ViewTransaction(self, self._ledger.begin())
        return self._transaction

    def _autobegin(self) -> None:
        self._check_open()
        if not self.in_transaction():
            self.begin()

    def begin_nested(self) -> NestedTransaction:
        self._autobegin()
        nested = self._connection.begin_nested()
        self._nested.append(nested)
        return nested

    def _end_own_nested(self, *, commit: bool) -> None:
        """Before the view's transaction ends, end the savepoints it opened inside it,
        innermost first, as a real connection's commit or rollback would."""
        while self._nested:
            nested = self._nested[-1]
            if nested.is_active and self._connection.get_nested_transaction() is nested:
                if commit:
                    nested.commit()
                else:
                    nested.rollback()
            elif nested.is_active:
                break  # something opened after it is still open: leave it to the ledger
            self._nested.pop()

    @property
    def connection(self) -> _DBAPIView:
        """The driver-level connection, whose commit and rollback are this view's."""
        self._autobegin()
        return _DBAPIView(self)

    def commit(self) -> None:
        if self._transaction is not None:
            self._transaction.commit()

    def rollback(self) -> None:
        if self._transaction is not None:
            self._transaction.rollback()

    def close(self) -> None:
        if not self._closed:
            self.rollback()
            self._closed = True

    def invalidate(self, exception: BaseException | None = None) -> None:
        """End this view only; the test's connection carries on."""
        try:
            self.close()
        finally:
            self._closed = True
            self._invalidated = True

    def detach(self) -> None:
        """Nothing to detach: the view owns no DBAPI connection."""

    def __enter__(self) -> RoutedConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- execution ------------------------------------------------------------------------

    def execution_options(self, **options: Any) -> RoutedConnection:
        # Kept on this view, never on the test's shared connection.
        self._options.update(options)
        return self

    def get_execution_options(self) -> Mapping[str, Any]:
        return {**self._connection.get_execution_options(), **self._options}

    def _run(
        self,
        method: str,
        statement: Any,
        parameters: Any,
        execution_options: Mapping[str, Any] | None,
    ) -> Any:
        options = {**self._options, **(execution_options or {})}
        options.pop("isolation_level", None)  # the test transaction's own level applies
        run = getattr(self._connection, method)
        autocommit = self._autocommit and not self.in_transaction()
        self._autobegin()
        transaction = self._transaction
        assert transaction is not None
        if _may_write(statement):
            transaction.wrote = True
        try:
            result = run(statement, parameters, execution_options=options)
        except BaseException:
            # A failed statement needs a real rollback (PostgreSQL aborts the savepoint).
            transaction.wrote = True
            if autocommit:
                self.rollback()
            raise
        if autocommit:
            # Each statement is kept at once, as with a real AUTOCOMMIT connection.
            self.commit()
        return result

    def execute(
        self,
        statement: Any,
        parameters: Any = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Any:
        return self._run("execute", statement, parameters, execution_options)

    def scalar(
        self,
        statement: Any,
        parameters: Any = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Any:
        return self._run("scalar", statement, parameters, execution_options)

    def scalars(
        self,
        statement: Any,
        parameters: Any = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Any:
        return self._run("scalars", statement, parameters, execution_options)

    def exec_driver_sql(
        self,
        statement: str,
        parameters: Any = None,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Any:
        return self._run("exec_driver_sql", statement, parameters, execution_options)
