"""The run's isolation: one shared connection to the test database, its ledger of scope
layers, and every routed engine, from the first test that needs them to the end."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .._database import TestDatabase
from .._errors import IsolationError, SettingError
from .._routing import EngineRedirect
from ..isolation import Ledger, Router, SessionFactory, driver_for
from ..schema import aimed_at
from ._scopes import ScopeTracker


class RunIsolation:
    """Routes the test database's engine and the application's engines and sessionmakers
    into one :class:`~pytest_alchemy.isolation.Ledger` until :meth:`close`.

    The shared connection comes from the application's first engine when there is one,
    so that its own listeners, dialect options and connection set-up apply, as in
    production; it is connected on first use.
    """

    def __init__(
        self,
        database: TestDatabase,
        scopes: ScopeTracker,
        app_engines: Sequence[tuple[Engine, str]],
        factories: Sequence[SessionFactory],
        *,
        lock_timeout: float,
        redirect: EngineRedirect | None = None,
    ) -> None:
        self.database = database
        self._redirect = redirect
        self.primary = app_engines[0][0] if app_engines else database.engine
        engines = [(database.engine, "db_engine"), *app_engines]
        self._check_drivers(engines)
        self._stack = ExitStack()
        real_pool = Router.real_pool(self.primary)
        self._stack.callback(real_pool.dispose)
        self.ledger = Ledger(
            lambda: self._connect(real_pool),
            driver_for(self.primary.dialect),
            root=scopes.root,
            context=scopes.current,
            on_breach=lambda reason: database.mark_dirty(),
            lock_timeout=lock_timeout,
            thread_origin=scopes.thread_origin,
        )
        router = Router(self.ledger)
        self.router = router
        self._stack.callback(self.ledger.close)
        self._stack.callback(router.close)
        for engine, label in engines:
            router.route(engine, label)
        router.label_sessions()
        # Every name this run may take, not only the one it claimed: an engine made from
        # the primary URL (alchemy_url_env is set before the claim) must not reach the
        # database of the run that holds that name.
        candidates = database.candidate_urls()
        router.guard(
            lambda dialect, cargs, cparams: any(
                aimed_at(dialect, cargs, cparams, url) for url in candidates
            )
        )
        for factory in factories:
            router.route_sessionmaker(factory, self.primary)
        self.scoped = router.scoped

    def _connect(self, real_pool: Any) -> Any:
        with self.router.plugin_connections():
            self.database.setup()
            self.router.initialize_dialects()
            return real_pool.connect()

    def adopt(self, engine: Engine, label: str) -> None:
        """Route an engine made after the run started (by an app factory) as the
        listed ones are: its connections go to the test database, into the ledger."""
        if self._redirect is not None:
            self._redirect.add(engine, label)
        self._check_drivers([(self.primary, "the test database"), (engine, label)])
        self.router.route(engine, label)

    def setup(self) -> Engine:
        """The test database's engine, the database created and built on first use."""
        with self.router.plugin_connections():
            return self.database.setup()

    @staticmethod
    def _check_drivers(engines: Sequence[tuple[Engine, str]]) -> None:
        first, first_label = engines[0]
        for engine, label in engines[1:]:
            if engine.dialect.driver != first.dialect.driver:
                raise SettingError(
                    f"pytest-alchemy: {label} uses the driver {engine.dialect.driver!r}, "
                    f"but the test database is reached with {first.dialect.driver!r} "
                    f"({first_label}); in a test every engine shares one connection, so "
                    "they must use the same driver.\nFix: use the application's driver "
                    "in alchemy_url (e.g. postgresql+psycopg://...)."
                )

    def session(self, label: str, class_: type[Session] = Session, **options: Any) -> Session:
        """A Session on the primary engine, named ``label`` in messages."""
        session = class_(bind=self.primary, **options)
        self.router.session_labels[id(session)] = label
        return session

    def forget_session(self, session: Session) -> None:
        self.router.session_labels.pop(id(session), None)

    def take_deferred(self) -> list[IsolationError]:
        errors, self.ledger.deferred[:] = list(self.ledger.deferred), []
        return errors

    def close(self) -> None:
        self._stack.close()
