"""Rollback isolation without pytest: one shared connection, into which a test's sessions
and the application's own engines and sessionmakers are routed, rolled back at the end.

Every change made to an application object is recorded on an exit stack, so it is undone
on every path, whatever the code inside did.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session

from .isolation import Context, Ledger, Router, Scope, SessionFactory, driver_for


class IsolatedTransaction:
    """A transaction that nothing routed into it can commit for real, rolled back by
    :meth:`close`. Usable without pytest::

        with IsolatedTransaction(engine) as tx:
            tx.route_engine(app_engine)      # app_engine.connect() joins it
            session = tx.session()           # Session(engine), joined too
            ...                              # commits release savepoints
        # everything is rolled back here, routing undone

    Connections of routed engines behave like independent connections whose
    transactions are savepoints of one shared connection (see
    :mod:`pytest_alchemy.isolation`). ``lock_timeout`` (seconds) bounds lock waits.
    """

    def __init__(self, engine: Engine, *, lock_timeout: float = 10.0) -> None:
        self.engine = engine
        self.lock_timeout = lock_timeout
        self._stack = ExitStack()
        self._router: Router | None = None
        self._ledger: Ledger | None = None
        self._connection: Connection | None = None

    @property
    def connection(self) -> Connection:
        """A Connection of ``engine`` inside the transaction (after :meth:`begin`)."""
        if self._connection is None:
            raise InvalidRequestError("the isolated transaction has not begun")
        return self._connection

    def begin(self) -> Connection:
        """Route ``engine`` and return a Connection of it, in a transaction."""
        if self._router is not None:
            raise InvalidRequestError("the isolated transaction has begun already")
        scope = Scope("the isolated transaction")
        context = Context(scope, "code inside IsolatedTransaction")
        real_pool = Router.real_pool(self.engine)
        self._stack.callback(real_pool.dispose)

        def connect() -> Any:
            assert self._router is not None
            self._router.initialize_dialects()
            return real_pool.connect()

        ledger = Ledger(
            connect,
            driver_for(self.engine.dialect),
            root=scope,
            context=lambda: context,
            lock_timeout=self.lock_timeout,
        )
        self._ledger = ledger
        router = Router(ledger)
        self._stack.callback(router.close)
        self._router = router
        router.route(self.engine, "the isolated engine")
        connection = self.engine.connect()
        self._stack.callback(connection.close)
        connection.begin()
        self._connection = connection
        return connection

    def session(self, class_: type[Session] = Session, **options: Any) -> Session:
        """A Session on ``engine``, closed at the end."""
        session = class_(bind=self.engine, **options)
        self._stack.callback(session.close)
        return session

    def route_engine(self, engine: Engine) -> None:
        """Make every connection of ``engine`` (``connect()``, ``begin()``,
        ``raw_connection()``, sessions bound to it) join the transaction."""
        if self._router is None:
            raise InvalidRequestError("the isolated transaction has not begun")
        self._router.route(engine, repr(engine))

    def route_sessionmaker(self, factory: SessionFactory) -> None:
        """Route the engines a sessionmaker (or a scoped_session's) is bound to; one bound
        to nothing is bound to ``engine`` until the end."""
        if self._router is None:
            raise InvalidRequestError("the isolated transaction has not begun")
        self._router.route_sessionmaker(factory, self.engine)

    def close(self) -> None:
        """Roll everything back, close every session, undo every routing."""
        try:
            if self._ledger is not None:
                self._ledger.close()  # first: what is still open has nothing to undo
        finally:
            try:
                self._stack.close()
            finally:
                self._ledger = None
                self._router = None
                self._connection = None

    def __enter__(self) -> IsolatedTransaction:
        self.begin()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
