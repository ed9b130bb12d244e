"""Rollback isolation: one connection and one outer transaction per test, into which the
test's session and the application's own engines and sessionmakers are bound.

Every change made here to an application object is a per-object change recorded on an
exit stack, so it is undone on every path, whatever the test did.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from functools import partial
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, NestedTransaction
from sqlalchemy.exc import InvalidRequestError, ResourceClosedError
from sqlalchemy.orm import Session, scoped_session, sessionmaker

#: How the test's and the application's sessions join the test transaction: each session
#: transaction is a SAVEPOINT, so commit and rollback behave as in production.
JOIN_MODE: Final = "create_savepoint"

SessionFactory = sessionmaker[Any] | scoped_session[Any]


class IsolatedTransaction:
    """One test's connection and outer transaction, rolled back by :meth:`close`.

    Usable without pytest::

        with IsolatedTransaction(engine) as tx:
            session = tx.session()
            tx.route_engine(app_engine)
            ...  # everything is rolled back on exit
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._stack = ExitStack()
        self._connection: Connection | None = None

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            raise InvalidRequestError("the isolated transaction has not begun")
        return self._connection

    def begin(self) -> Connection:
        """Open the test's connection and begin its outer transaction."""
        connection = self.engine.connect()
        self._stack.callback(connection.close)
        self._connection = connection
        connection.begin()
        self._stack.callback(self._rollback)
        # Committing the outer transaction would leave the test's data behind for good.
        event.listen(connection, "commit", _refuse_outer_commit)
        self._stack.callback(event.remove, connection, "commit", _refuse_outer_commit)
        return connection

    def _rollback(self) -> None:
        connection = self.connection
        if connection.in_transaction():
            connection.rollback()
        elif not connection.invalidated:
            # The outer transaction was ended without reaching the database (a refused
            # commit): roll the driver's transaction back before the pool reuses it.
            dbapi_connection = connection.connection.dbapi_connection
            if dbapi_connection is not None:
                dbapi_connection.rollback()

    def close(self) -> None:
        """Undo every routing, close every session, roll back and close the connection."""
        try:
            self._stack.close()
        finally:
            self._connection = None

    def __enter__(self) -> IsolatedTransaction:
        self.begin()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sessions -----------------------------------------------------------------------

    def session(self, class_: type[Session] = Session, **options: Any) -> Session:
        """A session joined to the test transaction; closed when the test ends."""
        session = class_(bind=self.connection, join_transaction_mode=JOIN_MODE, **options)
        self._stack.callback(session.close)
        return session

    # -- the application's objects --------------------------------------------------------

    def route_engine(self, engine: Engine) -> None:
        """Make ``engine.connect()`` (and so ``engine.begin()``, ``Session(engine)`` and
        sessionmakers bound to it) hand out views of the test's connection."""
        if "connect" in vars(engine):
            raise InvalidRequestError(f"{engine!r} is already routed into a test transaction")
        setattr(engine, "connect", partial(RoutedConnection, self.connection, engine))  # noqa: B010
        self._stack.callback(delattr, engine, "connect")

    def route_sessionmaker(self, factory: SessionFactory) -> None:
        """Bind a sessionmaker (or a scoped_session's) to the test's connection."""
        if isinstance(factory, scoped_session):
            # Sessions made before the test belong to another connection: drop them now,
            # and drop the test's ones after it.
            factory.remove()
            maker = factory.session_factory
            saved = dict(maker.kw)
            self._stack.callback(_restore_kw, maker, saved)
            self._stack.callback(factory.remove)
        else:
            maker = factory
            saved = dict(maker.kw)
            self._stack.callback(_restore_kw, maker, saved)
        maker.kw["bind"] = self.connection
        maker.kw["join_transaction_mode"] = JOIN_MODE
        binds = maker.kw.get("binds")
        if binds:
            maker.kw["binds"] = dict.fromkeys(binds, self.connection)


def _refuse_outer_commit(connection: Connection) -> None:
    raise InvalidRequestError(
        "pytest-alchemy: commit() on the test's connection (db_connection, or "
        "db_session.connection()) would commit the test transaction and leave its data "
        "behind, so it was refused. Use db_session.commit() (a savepoint), "
        "db_connection.begin_nested(), or a connection from an application engine listed "
        "in alchemy_engines, whose commit() releases a savepoint."
    )


def _restore_kw(maker: sessionmaker[Any], saved: dict[str, Any]) -> None:
    maker.kw.clear()
    maker.kw.update(saved)


class RoutedConnection:
    """What a routed engine's ``connect()`` returns during a test.

    It behaves like a fresh ``Connection`` of that engine, but runs on the test's
    connection: its transaction (begun explicitly or by autobegin) is a SAVEPOINT, so
    ``commit()`` releases it, ``rollback()`` returns to it, and ``close()`` rolls back what
    is left uncommitted, as closing a real connection would. Nothing reaches past the
    test's outer transaction.
    """

    def __init__(self, connection: Connection, engine: Engine) -> None:
        self._connection = connection
        self._engine = engine
        self._transaction: NestedTransaction | None = None
        self._options: dict[str, Any] = {}
        self._closed = False

    # -- identity -------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def invalidated(self) -> bool:
        return self._connection.invalidated

    def __repr__(self) -> str:
        return f"<RoutedConnection of {self._engine!r} into {self._connection!r}>"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def _check_open(self) -> None:
        if self._closed:
            raise ResourceClosedError("This Connection is closed")

    # -- transactions ---------------------------------------------------------------------

    def in_transaction(self) -> bool:
        return self._transaction is not None and self._transaction.is_active

    def get_transaction(self) -> NestedTransaction | None:
        return self._transaction if self.in_transaction() else None

    def get_nested_transaction(self) -> NestedTransaction | None:
        nested = self._connection.get_nested_transaction()
        if not self.in_transaction() or nested is self._transaction:
            return None
        return nested

    def in_nested_transaction(self) -> bool:
        return self.get_nested_transaction() is not None

    def begin(self) -> NestedTransaction:
        self._check_open()
        if self.in_transaction():
            raise InvalidRequestError(
                "This connection has already initialized a SQLAlchemy "
                "Transaction() object via begin() or autobegin; can't call begin() "
                "here unless rollback() or commit() is called first."
            )
        self._transaction = self._connection.begin_nested()
        return self._transaction

    def _autobegin(self) -> None:
        self._check_open()
        if not self.in_transaction():
            self._transaction = self._connection.begin_nested()

    def begin_nested(self) -> NestedTransaction:
        self._autobegin()
        return self._connection.begin_nested()

    def commit(self) -> None:
        if self._transaction is not None and self._transaction.is_active:
            self._transaction.commit()
        self._transaction = None

    def rollback(self) -> None:
        if self._transaction is not None and self._transaction.is_active:
            self._transaction.rollback()
        self._transaction = None

    def close(self) -> None:
        if not self._closed:
            self.rollback()
            self._closed = True

    def __enter__(self) -> RoutedConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- execution ------------------------------------------------------------------------

    def execution_options(self, **options: Any) -> RoutedConnection:
        # Kept on this view, never on the test's shared connection. The isolation level
        # is the test transaction's.
        options.pop("isolation_level", None)
        self._options.update(options)
        return self

    def get_execution_options(self) -> Mapping[str, Any]:
        return {**self._connection.get_execution_options(), **self._options}

    def _merged(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        merged = dict(self._options)
        if options:
            merged.update(options)
        merged.pop("isolation_level", None)
        return merged

    def _run(
        self,
        method: str,
        statement: Any,
        parameters: Any,
        execution_options: Mapping[str, Any] | None,
    ) -> Any:
        self._autobegin()
        run = getattr(self._connection, method)
        return run(statement, parameters, execution_options=self._merged(execution_options))

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
