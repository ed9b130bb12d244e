"""Routing engines into the shared connection, and stopping connections that are not.

A routed engine keeps its own pool object, so that every engine sharing it (those made by
``engine.execution_options()``, before or after) is routed too; only the pool's creator
is swapped for one that makes virtual connections. Checkouts are stamped with the scope
they happen in. Any other connection opened to the test database while routing is on
(an engine the plugin does not know) is stopped before it connects.
"""

from __future__ import annotations

import gc
import os
import sys
import sysconfig
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from sqlalchemy.pool import Pool

from .._errors import IsolationError, SettingError
from .._urls import render_url
from ..provision import is_plugin_dialect
from ._asyncio import (
    AsyncEngine,
    AsyncScoped,
    async_creator,
    dispose,
    is_async_object,
    sync_engine_of,
)
from ._facades import virtual_of
from ._ledger import Ledger
from ._shims import virtual_class
from ._virtual import VirtualConnection

#: What ``alchemy_sessionmakers`` lists: a sessionmaker, or a scoped_session over one
#: (or an ``async_sessionmaker`` / ``async_scoped_session``: typed as Any, as
#: ``sqlalchemy.ext.asyncio`` is imported only when one is met).
SessionFactory = sessionmaker[Any] | scoped_session[Any] | Any


#: How deep this thread is in the plugin's own connections, shared by every Router: while
#: one test database is built, a build that connects to another (one env.py migrating
#: every bind) is not stopped by the other's guard.
_PLUGIN = threading.local()


class Router:
    """Routes engines into one :class:`Ledger` until :meth:`close`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._stack = ExitStack()
        self._pools: dict[int, Pool] = {}
        #: Session objects to the name messages give them (``db_session``...).
        self.session_labels: dict[int, str] = {}
        self._plugin = _PLUGIN
        self._uninitialized: list[Pool] = []
        #: Routed scoped_sessions (emptied after each test by the pytest layer).
        self.scoped: list[scoped_session[Any] | AsyncScoped] = []

    def initialize_dialects(self) -> None:
        """Let routed engines that never connected initialize their dialects on a real
        connection of their own (once; SQLAlchemy's first-connect handler runs once)."""
        pools, self._uninitialized = self._uninitialized, []
        with self.plugin_connections():
            for pool in pools:
                try:
                    pool.connect().close()
                finally:
                    pool.dispose()

    @staticmethod
    def real_pool(engine: Engine) -> Pool:
        """A pool that makes real connections as ``engine`` does (its creator, dialect,
        listeners), for the shared connection. Call before :meth:`route`."""
        return engine.pool.recreate()

    def route(self, engine: Engine | AsyncEngine, label: str) -> None:
        """Every connection ``engine``'s pool hands out from now on is virtual (for an
        AsyncEngine: the dialect's adapted connection over an async facade of one)."""
        engine = sync_engine_of(engine)
        pool = engine.pool
        if id(pool) in self._pools:
            return
        ledger = self.ledger
        cls = virtual_class(engine.dialect.name)
        create: Callable[[Any], Any]
        if engine.dialect.is_async:
            create = async_creator(engine.dialect, lambda: cls(ledger, label), ledger)
        else:

            def create(record: Any) -> VirtualConnection:
                return cls(ledger, label)

        if not engine.dialect.is_async and engine.dialect.server_version_info is None:
            # Never connected: its dialect learns the server from a real connection
            # (drivers' type registries refuse virtual ones), made with the shared one.
            self._uninitialized.append(pool.recreate())
        dispose(pool)  # connections made before: real ones, perhaps to another database
        saved = pool._creator
        pool._creator = create  # type: ignore[assignment]  # SQLAlchemy wraps either form
        self._pools[id(pool)] = pool
        event.listen(pool, "checkout", self._stamp)
        event.listen(pool, "checkin", self._unstamp)
        event.listen(pool, "reset", self._resetting)

        def undo() -> None:
            event.remove(pool, "reset", self._resetting)
            event.remove(pool, "checkin", self._unstamp)
            event.remove(pool, "checkout", self._stamp)
            del self._pools[id(pool)]
            current = engine.pool
            dispose(pool)
            pool._creator = saved
            if current is not pool:  # engine.dispose() during the run made a new pool
                dispose(current)
                engine.pool = pool

        self._stack.callback(undo)
        if ledger.connected:
            self.initialize_dialects()

    def _stamp(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        virtual = virtual_of(dbapi_connection)
        if virtual is not None:
            virtual.checked_out(self.ledger.context().scope)

    def _unstamp(self, dbapi_connection: Any, record: Any) -> None:
        virtual = virtual_of(dbapi_connection)
        if virtual is not None:
            virtual.stamp = None
            virtual.session_label = None

    def _resetting(self, dbapi_connection: Any, record: Any, state: Any) -> None:
        # Only when the pool is about to roll back itself (SQLAlchemy sends this event
        # also when the Connection has reset already, or will only close).
        virtual = virtual_of(dbapi_connection)
        if (
            virtual is not None
            and not getattr(state, "transaction_was_reset", False)
            and not getattr(state, "terminate_only", False)
        ):
            virtual.resetting = True

    # -- sessions ------------------------------------------------------------------------

    def route_sessionmaker(
        self,
        factory: Any,
        default: Engine,
        async_default: Callable[[], AsyncEngine] | None = None,
    ) -> None:
        """Route the engines a sessionmaker (or a scoped_session's, or their asyncio
        versions') is bound to, so that ``get_bind()`` still returns them; one bound to
        nothing gets ``default`` (an async one ``async_default()``) until :meth:`close`.
        A scoped_session's registry is emptied now and at the end (its sessions belong
        to connections made before); :attr:`scoped` lists it."""
        if isinstance(factory, scoped_session) or is_async_object(factory, "async_scoped_session"):
            scoped = factory if isinstance(factory, scoped_session) else AsyncScoped(factory)
            scoped.remove()
            self.scoped.append(scoped)
            self._stack.callback(scoped.remove)
            maker = factory.session_factory
        else:
            maker = factory
        bind = maker.kw.get("bind")
        binds = maker.kw.get("binds") or {}
        for engine in [bind, *binds.values()]:
            if isinstance(engine, Engine) or is_async_object(engine, "AsyncEngine"):
                self.route(engine, render_url(engine.url))
        if bind is None and not binds:
            saved = dict(maker.kw)
            if is_async_object(maker, "async_sessionmaker"):
                if async_default is None:
                    raise SettingError(
                        "pytest-alchemy: an async_sessionmaker bound to no engine needs an "
                        "async driver for the test database."
                    )
                maker.kw["bind"] = async_default()
            else:
                maker.kw["bind"] = default
            self._stack.callback(_restore_kw, maker, saved)

    def label_sessions(self) -> None:
        """Name in messages the session a virtual connection works for."""
        event.listen(Session, "after_begin", self._label_session)
        self._stack.callback(event.remove, Session, "after_begin", self._label_session)

    def _label_session(self, session: Session, transaction: Any, connection: Any) -> None:
        virtual = virtual_of(getattr(connection.connection, "dbapi_connection", None))
        if virtual is not None:
            virtual.session_label = self.session_labels.get(
                id(session), f"a {type(session).__name__}"
            )

    # -- everything else ----------------------------------------------------------------

    @contextmanager
    def plugin_connections(self) -> Iterator[None]:
        """Connections the plugin itself makes (building, marking, the shared one)."""
        depth = getattr(self._plugin, "depth", 0)
        self._plugin.depth = depth + 1
        try:
            yield
        finally:
            self._plugin.depth = depth

    def plugin_connected(self) -> bool:
        """Whether this thread is inside :meth:`plugin_connections`."""
        return bool(getattr(self._plugin, "depth", 0))

    def is_routed(self, engine: Engine | AsyncEngine) -> bool:
        """Whether ``engine``'s connections are virtual (its pool is routed)."""
        return id(sync_engine_of(engine).pool) in self._pools

    def guard(
        self, aimed_at_test_database: Callable[[Dialect, Sequence[Any], Mapping[str, Any]], bool]
    ) -> None:
        """Stop, before it connects, any other connection to the test database."""

        def check(
            dialect: Dialect, conn_rec: Any, cargs: list[Any], cparams: dict[str, Any]
        ) -> None:
            if self.plugin_connected() or is_plugin_dialect(dialect):
                return
            if aimed_at_test_database(dialect, cargs, cparams):
                raise IsolationError(_unknown_engine(dialect))

        event.listen(Engine, "do_connect", check)
        self._stack.callback(event.remove, Engine, "do_connect", check)

    def close(self) -> None:
        self._stack.close()


def _restore_kw(maker: sessionmaker[Any], saved: dict[str, Any]) -> None:
    maker.kw.clear()
    maker.kw.update(saved)


def _unknown_engine(dialect: Dialect) -> str:
    engines = [o for o in gc.get_objects() if isinstance(o, Engine) and o.dialect is dialect]
    engine = engines[0] if engines else None
    shown = render_url(engine.url) if engine is not None else dialect.name
    where = _module_attribute(engine) if engine is not None else None
    called = _caller()
    listing = (
        f"alchemy_engines = {where}"
        if where
        else "alchemy_engines = package.module:get_engine (a function that returns it)"
    )
    return (
        f"pytest-alchemy: an engine that pytest-alchemy does not route ({shown}"
        f"{', ' + where if where else ''}) connected to the test database"
        f"{' from ' + called if called else ''}; its writes would stay behind, so the "
        f"connection was stopped before it was made.\nFix: list it ({listing}), so "
        "that it joins each test's transaction."
    )


def _module_attribute(engine: Engine) -> str | None:
    """Where a module keeps ``engine``: ``package.module:name``."""
    for name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict) or name.startswith(("sqlalchemy", "_pytest")):
            continue
        for attribute, value in list(namespace.items()):
            if value is engine or (
                is_async_object(value, "AsyncEngine") and value.sync_engine is engine
            ):
                return f"{name}:{attribute}"
    return None


_SKIPPED = (
    *{os.path.realpath(sysconfig.get_paths()["stdlib"]), os.path.realpath(sqlalchemy.__path__[0])},
    os.path.realpath(os.path.dirname(os.path.dirname(__file__))),
)


def _caller() -> str | None:
    """The first frame outside SQLAlchemy, pytest-alchemy and the standard library."""
    for frame in reversed(traceback.extract_stack()[:-1]):
        if not os.path.realpath(frame.filename).startswith(_SKIPPED):
            return f"{frame.filename}:{frame.lineno}"
    return None
