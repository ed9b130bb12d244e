"""Rollback isolation: one connection and one outer transaction per test, into which the
test's session and the application's own engines and sessionmakers are bound.

Every change made here to an application object is a per-object change recorded on an
exit stack, so it is undone on every path, whatever the test did.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from functools import partial
from typing import Any, Final, cast

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from ._views import RoutedConnection, SavepointLedger

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
        self._ledger: SavepointLedger | None = None
        self._routed: list[Engine] = []
        self._engine_autocommits = False

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
        self._ledger = SavepointLedger(connection)
        connection.begin()
        self._engine_autocommits = _autocommits(connection)
        if self._engine_autocommits:
            # An application engine made with isolation_level="AUTOCOMMIT": the test
            # transaction must be a real one (the engine's views keep autocommitting).
            connection.rollback()
            connection.execution_options(isolation_level=connection.default_isolation_level)
            connection.begin()
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
        """Roll back, then close every session, undo every routing, close the connection.

        The outer transaction goes first: after it, no session or view has a savepoint
        left to roll back, whatever order they were opened and left in.
        """
        try:
            if self._connection is not None:
                self._rollback()
        finally:
            try:
                self._stack.close()
            finally:
                self._connection = None
                self._ledger = None

    def __enter__(self) -> IsolatedTransaction:
        self.begin()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sessions -----------------------------------------------------------------------

    def session(self, class_: type[Session] = Session, **options: Any) -> Session:
        """A session joined to the test transaction; closed when the test ends.

        It sits on a view of the test's connection, so that its savepoints and those of
        the application's connections are ended in an order the database accepts."""
        assert self._ledger is not None
        view = RoutedConnection(self._ledger, self.connection.engine)
        bind = cast(Connection, view)  # it passes for one (isinstance says so)
        session = class_(bind=bind, join_transaction_mode=JOIN_MODE, **options)
        self._stack.callback(session.close)
        return session

    # -- the application's objects --------------------------------------------------------

    def route_engine(self, engine: Engine) -> None:
        """Make ``engine.connect()`` (and so ``engine.begin()``, ``Session(engine)``,
        sessionmakers bound to it, and engines made by ``engine.execution_options()``)
        hand out views of the test's connection."""
        if any(engine is routed for routed in self._routed):
            return
        if "connect" in vars(engine):
            raise InvalidRequestError(f"{engine!r} is already routed into a test transaction")
        self._routed.append(engine)
        self._stack.callback(self._routed.remove, engine)
        # Engines derived with execution_options() before the test share the engine's
        # events but not the routing: stop them before they write past the test.
        event.listen(engine, "engine_connect", _refuse_unrouted)
        self._stack.callback(event.remove, engine, "engine_connect", _refuse_unrouted)
        self._patch(engine, "connect", partial(self._view, engine, {}))
        self._patch(engine, "execution_options", partial(self._option_engine, engine))

    def _patch(self, target: Engine, name: str, value: Any) -> None:
        setattr(target, name, value)
        self._stack.callback(delattr, target, name)

    def _view(self, engine: Engine, options: Mapping[str, Any]) -> RoutedConnection:
        assert self._ledger is not None
        view = RoutedConnection(self._ledger, engine)
        if engine is self.engine and self._engine_autocommits:
            view.execution_options(isolation_level="AUTOCOMMIT")
        return view.execution_options(**{**engine.get_execution_options(), **options})

    def _option_engine(self, engine: Engine, **options: Any) -> Engine:
        derived = Engine.execution_options(engine, **options)
        self._patch(derived, "connect", partial(self._view, derived, options))
        return derived

    def route_sessionmaker(self, factory: SessionFactory) -> None:
        """Route a sessionmaker (or a scoped_session's) into the test transaction: the
        engines it is bound to are routed (so ``get_bind()`` still returns them); one
        bound to nothing, or to a connection, is bound to the test's connection."""
        if isinstance(factory, scoped_session):
            # Sessions made before the test belong to another connection: drop them now,
            # and drop the test's ones after it.
            factory.remove()
            self._stack.callback(factory.remove)
            maker = factory.session_factory
        else:
            maker = factory
        bind = maker.kw.get("bind")
        binds = maker.kw.get("binds") or {}
        engines = [b for b in [bind, *binds.values()] if isinstance(b, Engine)]
        for engine in engines:
            self.route_engine(engine)
        if isinstance(bind, Engine) or (bind is None and engines):
            return
        saved = dict(maker.kw)
        self._stack.callback(_restore_kw, maker, saved)
        maker.kw["bind"] = self.connection
        maker.kw["join_transaction_mode"] = JOIN_MODE


def _autocommits(connection: Connection) -> bool:
    """Whether the driver connection, just begun, is in autocommit mode (which
    ``get_isolation_level()`` does not tell)."""
    detect = getattr(connection.dialect, "detect_autocommit_setting", None)
    dbapi_connection = connection.connection.dbapi_connection
    if detect is None or dbapi_connection is None or not detect(dbapi_connection):
        return False
    # Drivers that say whether a transaction is open (sqlite3, whose connections the
    # plugin begins itself while they look autocommit) are believed.
    return not getattr(dbapi_connection, "in_transaction", False)


def _refuse_unrouted(connection: Connection) -> None:
    connection.close()
    raise InvalidRequestError(
        f"pytest-alchemy: {connection.engine!r} opened a real connection during a test, "
        "outside the test transaction (an engine made with engine.execution_options() "
        "before the test starts is not routed); its writes would stay behind, so it was "
        "stopped. List that engine in alchemy_engines as well, or derive it inside the code "
        "under test."
    )


def _refuse_outer_commit(connection: Connection) -> None:
    raise InvalidRequestError(
        "pytest-alchemy: commit() on the test's connection (db_connection) would commit "
        "the test transaction and leave its data "
        "behind, so it was refused. Use db_session.commit() (a savepoint), "
        "db_connection.begin_nested(), or a connection from an application engine listed "
        "in alchemy_engines, whose commit() releases a savepoint."
    )


def _restore_kw(maker: sessionmaker[Any], saved: dict[str, Any]) -> None:
    maker.kw.clear()
    maker.kw.update(saved)
