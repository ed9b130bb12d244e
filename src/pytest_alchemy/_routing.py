"""Pointing the application's own engines at the test database for the whole run.

Applications create their engine at import time from their development URL and use it
in module- and session-scoped fixtures, before any test transaction exists. A
``do_connect`` listener rewrites every new DBAPI connection of such an engine to the test
database (provisioning it on first use), and the pool is emptied before and after, so
that no connection to the development database survives.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Dialect, Engine

from ._errors import SettingError
from .isolation._asyncio import AsyncEngine, dispose, sync_engine_of
from .isolation._facades import virtual_of
from .provision import provisioner_class

#: Set in a connection record's info by the redirect, checked when the connection opens.
_REDIRECTED = "pytest_alchemy_redirected"


class EngineRedirect:
    """Retargets application engines at one test database until :meth:`close`."""

    def __init__(
        self,
        test_url: URL,
        ensure_database: Callable[[], object],
        shared_args: dict[str, Any] | None = None,
        current_url: Callable[[], URL] | None = None,
    ) -> None:
        self.test_url = test_url
        #: The test database's URL once ``ensure_database`` ran (the run may have had to
        #: take another name than ``test_url``'s, when another run holds that one).
        self._current_url = current_url or (lambda: self.test_url)
        self._ensure = ensure_database
        self._shared_args = shared_args or {}
        self._stack = ExitStack()
        self.engines: list[Engine] = []

    def add(self, engine: Engine | AsyncEngine, setting: str) -> None:
        """Send every future connection of ``engine`` (an AsyncEngine's: of its
        ``sync_engine``) to the test database."""
        engine = sync_engine_of(engine)
        if any(engine is known for known in self.engines):
            return
        env_setting = "alchemy_async_url_env" if engine.dialect.is_async else "alchemy_url_env"
        test_backend = self.test_url.get_backend_name()
        app_backend = engine.url.get_backend_name()
        if provisioner_class(engine.url, setting) is not provisioner_class(
            self.test_url, "the test database URL"
        ):
            raise SettingError(
                f"pytest-alchemy: {setting} is a {app_backend} engine, but the test database "
                f"is {test_backend}; an engine cannot be moved to another kind of database.\n"
                f"Fix: set alchemy_url to a {app_backend} URL, or create the application's "
                f"engine from an environment variable named in {env_setting}."
            )
        dialect = engine.dialect
        # Its own driver (an async one stays async), on the test database.
        test_url = self.test_url.set(drivername=engine.url.drivername)
        app_args, app_params = dialect.create_connect_args(engine.url)
        made_args, made_params = dialect.create_connect_args(test_url)

        def to_test_database(
            dialect: Dialect, conn_rec: Any, cargs: list[Any], cparams: dict[str, Any]
        ) -> None:
            self._ensure()
            current = self._current_url().set(drivername=test_url.drivername)
            test_args, test_params = (
                dialect.create_connect_args(current)
                if current != test_url
                else (made_args, made_params)
            )
            engine.url = current
            for key in app_params:
                if key not in test_params:
                    cparams.pop(key, None)
            cparams.update(test_params)
            cparams.update(self._shared_args)
            cargs[: len(app_args)] = test_args
            conn_rec.info[_REDIRECTED] = True

        def check_redirected(dbapi_connection: Any, conn_rec: Any) -> None:
            # An engine made with creator= connects without do_connect: it would reach
            # its own database. Stop before anything runs on that connection.
            if not conn_rec.info.get(_REDIRECTED) and virtual_of(dbapi_connection) is None:
                dbapi_connection.close()
                raise SettingError(
                    f"pytest-alchemy: {setting} connects through its own creator function, "
                    "which pytest-alchemy cannot point at the test database; the "
                    "connection it made was closed before use.\nFix: create the engine "
                    "from a URL (set alchemy_url_env and read the URL from that variable)."
                )

        dispose(engine.pool)
        event.listen(engine, "do_connect", to_test_database)
        event.listen(engine, "first_connect", check_redirected, insert=True)
        event.listen(engine, "connect", check_redirected, insert=True)
        original_url = engine.url
        engine.url = test_url
        self.engines.append(engine)

        def undo() -> None:
            event.remove(engine, "connect", check_redirected)
            event.remove(engine, "first_connect", check_redirected)
            event.remove(engine, "do_connect", to_test_database)
            engine.url = original_url
            dispose(engine.pool)

        self._stack.callback(undo)

    def close(self) -> None:
        """Give every engine back its own URL, with its pool emptied."""
        try:
            self._stack.close()
        finally:
            self.engines.clear()
