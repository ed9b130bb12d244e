"""The asyncio fixtures: ``async_db_engine``, ``async_db_connection``, ``async_db_session``.

They are plain (sync) fixtures that return async objects, so that they serve async tests
under pytest-asyncio (strict or auto mode, any ``loop_scope``) and anyio alike: routed
async connections do no I/O of their own (see :mod:`pytest_alchemy.isolation._facades`),
so they belong to no event loop, and the fixtures open and close them at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from .._errors import AlchemyError, SettingError
from ..isolation._asyncio import AsyncEngine
from ..isolation._facades import run_now
from ._isolation import RunIsolation
from ._state import guarded, stop


@pytest.fixture(scope="session")
def async_db_engine(_alchemy_isolation: RunIsolation) -> AsyncEngine:
    """An ``AsyncEngine`` on the provisioned test database, schema built: the async
    driver that runs over the test's sync one (``sqlite+aiosqlite``,
    ``postgresql+psycopg_async``, ``mysql+aiomysql``), or the one ``alchemy_url``
    names. Its connections join the layered transaction of whatever scope uses them,
    as ``db_engine``'s do. Raises SettingError (stopping the run) when the async driver
    is not installed, naming the pip extra."""
    guarded(_alchemy_isolation.setup)
    return guarded(_alchemy_isolation.async_engine)


@pytest.fixture
def async_db_connection(_alchemy_isolation: RunIsolation) -> Iterator[Any]:
    """An ``AsyncConnection`` of the application's first AsyncEngine (else
    ``async_db_engine``) in a transaction; what it commits lasts until the end of the
    test. The test's sync fixtures see its writes and the reverse (one connection)."""
    guarded(_alchemy_isolation.setup)
    engine = guarded(_alchemy_isolation.async_primary)
    connection = run_now(engine.connect(), "opening async_db_connection")
    try:
        run_now(connection.begin(), "beginning async_db_connection's transaction")
        yield connection
    finally:
        _close(connection, "async_db_connection")


@pytest.fixture
def async_db_session(
    _alchemy_isolation: RunIsolation, alchemy_session_options: dict[str, Any]
) -> Iterator[Any]:
    """An ``AsyncSession`` on the application's first AsyncEngine (else
    ``async_db_engine``); what it commits lasts until the end of the test, and an
    application ``rollback()`` never takes the test's own data with it.
    ``alchemy_session_options`` apply: its ``class_`` may be an AsyncSession subclass
    (``sqlmodel.ext.asyncio.session.AsyncSession``) or a Session subclass, used as
    ``sync_session_class``. ``expire_on_commit`` stays SQLAlchemy's default (True), the
    one that reads what a request committed rather than stale cached rows; attributes
    expired by a commit are loaded with ``await session.refresh(obj)`` or
    ``AsyncAttrs.awaitable_attrs``."""
    guarded(_alchemy_isolation.setup)
    options = dict(alchemy_session_options)
    class_ = guarded(lambda: async_session_class(options.pop("class_", None)))
    session = guarded(
        lambda: _alchemy_isolation.async_session("async_db_session", class_, **options)
    )
    try:
        yield session
    finally:
        try:
            _close(session, "async_db_session")
        finally:
            _alchemy_isolation.forget_session(session.sync_session)


def async_session_class(class_: Any) -> Any:
    """The AsyncSession class for ``alchemy_session_options['class_']``: itself, or
    AsyncSession with it as ``sync_session_class`` when it is a Session class."""
    from sqlalchemy.ext.asyncio import AsyncSession

    if class_ is None:
        return AsyncSession
    if isinstance(class_, type) and issubclass(class_, AsyncSession):
        return class_
    if isinstance(class_, type) and issubclass(class_, Session):

        class Async(AsyncSession):
            sync_session_class = class_

        return Async
    raise SettingError(
        f"pytest-alchemy: alchemy_session_options['class_'] is {class_!r}, not a Session "
        "or AsyncSession class.\nFix: use sqlalchemy.orm.Session, AsyncSession or a "
        "subclass such as sqlmodel.Session."
    )


def sqlmodel_options(metadata: Any) -> dict[str, Any]:
    """``{"class_": sqlmodel's AsyncSession}`` (whose ``sync_session_class`` is
    ``sqlmodel.Session``) when ``metadata`` is SQLModel or a subclass; else ``{}``."""
    if not isinstance(metadata, type) or not any(
        cls.__module__.startswith("sqlmodel") and cls.__name__ == "SQLModel"
        for cls in metadata.__mro__
    ):
        return {}
    try:
        from sqlmodel.ext.asyncio.session import AsyncSession
    except ImportError:  # sqlalchemy.ext.asyncio needs greenlet: sync sessions only
        from sqlmodel import Session

        return {"class_": Session}
    return {"class_": AsyncSession}


def sync_session_class(class_: Any) -> type[Session]:
    """The Session class ``db_session`` makes for ``alchemy_session_options['class_']``:
    itself, or an AsyncSession class's ``sync_session_class``."""
    if isinstance(class_, type) and issubclass(class_, Session):
        return class_
    inner = getattr(class_, "sync_session_class", None)
    if isinstance(class_, type) and isinstance(inner, type) and issubclass(inner, Session):
        return inner
    raise SettingError(
        f"pytest-alchemy: alchemy_session_options['class_'] is {class_!r}, not a Session "
        "class.\nFix: use sqlalchemy.orm.Session or a subclass such as sqlmodel.Session "
        "(or an AsyncSession class, whose sync_session_class db_session uses)."
    )


def _close(obj: Any, name: str) -> None:
    """Close an async connection or session at teardown; the test's transaction is
    rolled back by its scope whatever happens here."""
    try:
        run_now(obj.close(), f"closing {name}")
    except AlchemyError as exc:
        stop(exc)
