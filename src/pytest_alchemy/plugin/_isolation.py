"""The run's isolation: one shared connection to each test database, its ledger of scope
layers, and every routed engine, from the first test that needs them to the end.

A run has one test database, plus one per further Flask-SQLAlchemy bind key
(``SQLALCHEMY_BINDS``). Each has its own ledger and router; all of them follow the same
pytest scopes, so the pytest hooks end, restart and report scopes on every one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any, TypeVar

from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, scoped_session

from .._database import TestDatabase
from .._errors import IsolationError, SettingError
from .._routing import EngineRedirect
from ..isolation import Ledger, Router, SessionFactory, driver_for
from ..isolation._asyncio import AsyncEngine, AsyncScoped, shared_driver, sync_engine_of
from ..isolation._gate import ThreadGate
from ..isolation._scope import Scope
from ..schema import aimed_at
from ._scopes import ScopeTracker

T = TypeVar("T")


class _Bind:
    """One test database's shared connection, ledger and router."""

    def __init__(
        self,
        database: TestDatabase,
        primary: Engine,
        scopes: ScopeTracker,
        *,
        lock_timeout: float,
        setup: Callable[[], object],
        redirect: EngineRedirect | None,
        gate: ThreadGate,
    ) -> None:
        self.database = database
        self.primary = primary
        self.redirect = redirect
        self._setup = setup
        self._stack = ExitStack()
        real_pool = Router.real_pool(primary)
        self._stack.callback(real_pool.dispose)
        if redirect is not None:
            self._stack.callback(redirect.close)
        self.ledger = Ledger(
            lambda: self._connect(real_pool),
            driver_for(primary.dialect),
            root=scopes.root,
            context=scopes.current,
            on_breach=lambda reason: database.mark_dirty(),
            lock_timeout=lock_timeout,
            thread_origin=scopes.thread_origin,
            gate=gate,
        )
        self.router = Router(self.ledger)
        self._stack.callback(self.ledger.close)
        self._stack.callback(self.router.close)
        self.router.route(database.engine, "db_engine")
        self.router.label_sessions()
        # Every name this run may take, not only the one it claimed: an engine made from
        # the primary URL (alchemy_url_env is set before the claim) must not reach the
        # database of the run that holds that name.
        candidates = database.candidate_urls()
        self.router.guard(
            lambda dialect, cargs, cparams: any(
                aimed_at(dialect, cargs, cparams, url) for url in candidates
            )
        )

    def _connect(self, real_pool: Any) -> Any:
        with self.router.plugin_connections():
            self._setup()
            self.router.initialize_dialects()
            return real_pool.connect()

    def adopt(self, engine: Engine | AsyncEngine, label: str) -> None:
        if self.redirect is not None:
            self.redirect.add(engine, label)
        RunIsolation._check_drivers([(self.primary, "the test database"), (engine, label)])
        self.router.route(engine, label)

    def close(self) -> None:
        self._stack.close()


class RunIsolation:
    """Routes the test database's engine and the application's engines and sessionmakers
    into one :class:`~pytest_alchemy.isolation.Ledger` until :meth:`close` (and the
    engines of each further bind into that bind's own ledger).

    The shared connection comes from the application's first engine when there is one,
    so that its own listeners, dialect options and connection set-up apply, as in
    production; it is connected on first use.
    """

    def __init__(
        self,
        database: TestDatabase,
        scopes: ScopeTracker,
        app_engines: Sequence[tuple[Engine | AsyncEngine, str]],
        factories: Sequence[SessionFactory],
        *,
        lock_timeout: float,
        async_url: Callable[[URL], URL] | None = None,
        redirect: EngineRedirect | None = None,
        bind_databases: Callable[[], dict[str, TestDatabase]] = dict,
        bind_database: Callable[[str], TestDatabase] | None = None,
        group_build: bool = False,
    ) -> None:
        self.database = database
        sync_engines = [e for e, _ in app_engines if isinstance(e, Engine)]
        #: The engine db_connection and db_session use, and whose pool's set-up the
        #: shared connection gets: the application's first sync engine, else db_engine.
        self.primary = sync_engines[0] if sync_engines else database.engine
        #: The application's first AsyncEngine (else async_db_engine, made when needed).
        self._app_async = next((e for e, _ in app_engines if not isinstance(e, Engine)), None)
        self._async_url = async_url
        self._async_engine: AsyncEngine | None = None
        self._check_drivers([(database.engine, "db_engine"), *app_engines])
        self._scopes = scopes
        self._lock_timeout = lock_timeout
        #: The further binds' test databases (Flask-SQLAlchemy bind keys), by key, and
        #: the one of a key (made when first asked for).
        self._bind_databases = bind_databases
        self._bind_database = bind_database or (lambda key: bind_databases()[key])
        #: Whether one build makes every bind's schema (Flask-Migrate's multiple-database
        #: migrations): then the binds are set up before the default one.
        self._group_build = group_build
        #: Threads' turns, one for every bind (see Ledger).
        self._gate = ThreadGate(threading.current_thread(), lock_timeout)
        self._default = _Bind(
            database,
            self.primary,
            scopes,
            lock_timeout=lock_timeout,
            setup=self.setup,
            redirect=redirect,
            gate=self._gate,
        )
        self._binds: dict[str, _Bind] = {}
        self.ledger = self._default.ledger
        self.router = self._default.router
        for engine, label in app_engines:
            self.router.route(engine, label)
        for factory in factories:
            self.router.route_sessionmaker(factory, self.primary, self.async_primary)

    # -- asyncio ------------------------------------------------------------------------

    def async_engine(self) -> AsyncEngine:
        """``async_db_engine``: an AsyncEngine on the test database (the async driver
        over the shared connection's), routed; made on first use."""
        if self._async_engine is None:
            from sqlalchemy.ext.asyncio import create_async_engine

            if self._async_url is None:
                raise SettingError("pytest-alchemy: no async URL for the test database.")
            engine = create_async_engine(self._async_url(self.database.url))
            self._check_drivers([(self.primary, "the test database"), (engine, "async_db_engine")])
            self.router.route(engine, "async_db_engine")
            self._async_engine = engine
        return self._async_engine

    def async_primary(self) -> AsyncEngine:
        """The engine ``async_db_connection`` and ``async_db_session`` use: the
        application's first AsyncEngine, else :meth:`async_engine`."""
        return self._app_async if self._app_async is not None else self.async_engine()

    def async_session(self, label: str, class_: type[Any], **options: Any) -> Any:
        """An AsyncSession (``class_``) on :meth:`async_primary`, named ``label``."""
        session = class_(bind=self.async_primary(), **options)
        self.router.session_labels[id(session.sync_session)] = label
        return session

    # -- binds --------------------------------------------------------------------------

    def bind(self, key: str | None) -> _Bind:
        """The ledger and router of bind ``key`` (None: the default one)."""
        if key is None:
            return self._default
        found = self._binds.get(key)
        if found is None:
            database = self._bind_database(key)
            redirect = EngineRedirect(
                database.url,
                database.setup,
                database.provisioner.shared_connect_args(),
                current_url=lambda: database.url,
            )
            found = _Bind(
                database,
                database.engine,
                self._scopes,
                lock_timeout=self._lock_timeout,
                setup=self.setup,
                redirect=redirect,
                gate=self._gate,
            )
            self._binds[key] = found
        return found

    def _all(self) -> list[_Bind]:
        return [self._default, *self._binds.values()]

    def adopt(self, engine: Engine, label: str, key: str | None = None) -> None:
        """Route an engine made after the run started (by an app factory) as the
        listed ones are: its connections go to bind ``key``'s test database, into that
        bind's ledger."""
        self.bind(key).adopt(engine, label)

    def is_routed(self, engine: Engine) -> bool:
        return any(bind.router.is_routed(engine) for bind in self._all())

    def plugin_connected(self) -> bool:
        """Whether this thread is making the plugin's own connections (building)."""
        return self.router.plugin_connected()

    # -- life ---------------------------------------------------------------------------

    def setup(self) -> Engine:
        """The test database's engine, every test database created and built on first
        use (the binds' first when one build makes them all, so that it finds them).

        First use may come inside a running event loop (an async test whose application
        engine connects first): the build then runs on a thread of its own, as an async
        env.py calls ``asyncio.run()``, which refuses to run inside a loop."""
        if not _loop_running() or (
            self.database.is_set_up and all(d.is_set_up for d in self._bind_databases().values())
        ):
            return self._setup()
        return _on_a_thread(self._setup)

    def _setup(self) -> Engine:
        with self.router.plugin_connections():
            binds = self._bind_databases()
            if self._group_build:
                for key, database in binds.items():
                    database.setup()
                    if not database.reused and not self.database.is_set_up:
                        # The default bind's build migrates every bind: it must run.
                        self.database.recreate = True
                        self.database.recreate_reason = (
                            f"the test database of bind {key!r} was made anew, and one "
                            "upgrade migrates every bind"
                        )
                try:
                    engine = self.database.setup()
                except BaseException:
                    for database in binds.values():
                        database.mark_dirty()  # half-migrated: never reused
                    raise
                for database in binds.values():
                    database.confirm()  # migrated by that build: now marked built
                return engine
            engine = self.database.setup()
            for database in binds.values():
                database.setup()
            return engine

    @staticmethod
    def _check_drivers(engines: Sequence[tuple[Engine | AsyncEngine, str]]) -> None:
        first, first_label = engines[0]
        for engine, label in engines[1:]:
            if shared_driver(engine) != shared_driver(first):
                driver = sync_engine_of(engine).dialect.driver
                over = shared_driver(engine)
                runs = f" (which runs over {over!r})" if over != driver else ""
                raise SettingError(
                    f"pytest-alchemy: {label} uses the driver {driver!r}{runs}, but the "
                    f"test database is reached with {shared_driver(first)!r} "
                    f"({first_label}); in a test every engine shares one connection, so "
                    "they must use the same driver (an async one: the one it runs "
                    "over).\nFix: use the application's driver in alchemy_url (e.g. "
                    "postgresql+psycopg://..., or postgresql+psycopg_async://... for an "
                    "application on psycopg's async driver)."
                )

    def session(self, label: str, class_: type[Session] = Session, **options: Any) -> Session:
        """A Session on the primary engine, named ``label`` in messages."""
        session = class_(bind=self.primary, **options)
        self.router.session_labels[id(session)] = label
        return session

    def label_session(self, session: Session, label: str) -> None:
        for bind in self._all():
            bind.router.session_labels[id(session)] = label

    def forget_session(self, session: Session) -> None:
        for bind in self._all():
            bind.router.session_labels.pop(id(session), None)

    # -- scopes, for the pytest hooks -----------------------------------------------------

    @property
    def scoped(self) -> list[scoped_session[Any] | AsyncScoped]:
        return self.router.scoped

    def restart_scope(self, scope: Scope, fixture: str, why: str | None = None) -> None:
        self._each(
            lambda bind: (
                bind.ledger.restart_scope(scope, fixture)
                if why is None
                else bind.ledger.restart_scope(scope, fixture, why)
            )
        )

    def end_scope(self, scope: Scope) -> None:
        self._each(lambda bind: bind.ledger.end_scope(scope))

    def _each(self, action: Callable[[_Bind], object]) -> None:
        """``action`` on every bind, even when one raises; the first error is raised."""
        error: BaseException | None = None
        for bind in self._all():
            try:
                action(bind)
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error

    def take_deferred(self) -> list[IsolationError]:
        errors: list[IsolationError] = []
        for bind in self._all():
            errors.extend(bind.ledger.deferred)
            bind.ledger.deferred[:] = []
        return errors

    def close(self) -> None:
        stack = ExitStack()
        for bind in self._all():
            stack.callback(bind.close)
        stack.close()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _on_a_thread(function: Callable[[], T]) -> T:
    """``function()`` on a new thread, waited for; its exception raised here."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, function()))
        except BaseException as exc:  # raised in the caller's thread below
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="pytest-alchemy build")
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]
