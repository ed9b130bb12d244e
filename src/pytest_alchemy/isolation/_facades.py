"""Async facades: the asyncio driver API, answered at once by a virtual connection.

An ``AsyncEngine`` is routed as a sync engine is, one level down: its pool makes the
dialect's own adapted connection (``AsyncAdapt_*_connection``) through the dialect's
documented ``async_creator`` path, over a facade whose coroutines call the virtual
(sync) connection and return without ever suspending. So the async front shares the run's
one sync connection, its ledger, scope layers, breach checks and thread turns, and a
connection made in one event loop works in any other (none does I/O of its own).

Each async driver has a facade class here, registered under SQLAlchemy's driver name
(``dialect.driver``) with the sync driver it runs over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from .._errors import IsolationError
from ._virtual import VirtualConnection

T = TypeVar("T")


def run_now(awaitable: Awaitable[T], what: str) -> T:
    """Run ``awaitable`` to its end without an event loop: it must never suspend (routed
    async connections do no I/O of their own). Raises IsolationError if it would wait
    (a task of the test still holds the connection)."""
    coro = awaitable.__await__()
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    close = getattr(coro, "close", None)
    if close is not None:
        close()
    raise IsolationError(
        f"pytest-alchemy: {what} had to wait for the connection, which another task still "
        "uses (a coroutine the test did not await, or a task it left running); the "
        "test's transaction is rolled back all the same.\nFix: await every call, and "
        "cancel or await the test's tasks before it ends."
    )


class AsyncCursorFacade:
    """An asyncio driver cursor over a virtual cursor."""

    def __init__(self, facade: AsyncConnectionFacade, cursor: Any) -> None:
        self._facade = facade
        self._cursor = cursor

    async def __aenter__(self) -> AsyncCursorFacade:
        return self

    def __await__(self) -> Generator[Any, None, AsyncCursorFacade]:
        # aiosqlite's cursor() is awaited by SQLAlchemy 2.0 (entered by 2.1).
        return self.__aenter__().__await__()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def execute(self, sql: Any, *args: Any, **kw: Any) -> AsyncCursorFacade:
        self._facade._call(self._cursor.execute, sql, *args, **kw)
        return self

    async def executemany(self, sql: Any, *args: Any, **kw: Any) -> AsyncCursorFacade:
        self._facade._call(self._cursor.executemany, sql, *args, **kw)
        return self

    async def fetchone(self) -> Any:
        return self._facade._call(self._cursor.fetchone)

    async def fetchmany(self, size: int | None = None) -> Any:
        if size is None:
            return self._facade._call(self._cursor.fetchmany)
        return self._facade._call(self._cursor.fetchmany, size)

    async def fetchall(self) -> Any:
        return self._facade._call(self._cursor.fetchall)

    async def nextset(self) -> Any:
        return self._facade._call(self._cursor.nextset)

    async def setinputsizes(self, *args: Any) -> None:
        return None

    async def close(self) -> None:
        self._cursor.close()

    async def __aiter__(self) -> AsyncIterator[Any]:
        while True:
            row = self._facade._call(self._cursor.fetchone)
            if row is None:
                return
            yield row

    def __getattr__(self, name: str) -> Any:  # description, rowcount, lastrowid...
        return getattr(self._cursor, name)


class AsyncConnectionFacade:
    """An asyncio driver connection over a virtual connection: what SQLAlchemy's adapted
    connection class for the driver calls, answered at once."""

    cursor_class: type[AsyncCursorFacade] = AsyncCursorFacade

    def __init__(self, virtual: VirtualConnection) -> None:
        self.virtual = virtual

    def _call(self, function: Callable[..., T], *args: Any, **kw: Any) -> T:
        """A call of the sync driver; its errors as the async driver raises them."""
        return function(*args, **kw)

    def cursor(self, *args: Any, **kw: Any) -> AsyncCursorFacade:
        return self.cursor_class(self, self.virtual.cursor())

    async def commit(self) -> None:
        self._call(self.virtual.commit)

    async def rollback(self) -> None:
        self._call(self.virtual.rollback)

    async def close(self) -> None:
        self.virtual.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.virtual, name)


class PsycopgAsyncFacade(AsyncConnectionFacade):
    """psycopg's ``AsyncConnection``: settings are awaited setters."""

    class cursor_class(AsyncCursorFacade):  # the attribute the base reads
        def _close(self) -> None:
            self._cursor.close()

    def cursor(self, *args: Any, **kw: Any) -> AsyncCursorFacade:
        name = args[0] if args else kw.get("name")
        real = self.virtual.cursor(name) if name else self.virtual.cursor()
        return self.cursor_class(self, real)

    @property
    def closed(self) -> bool:
        return bool(self.virtual._closed)

    async def set_autocommit(self, value: bool) -> None:
        virtual: Any = self.virtual
        virtual.autocommit = value

    async def set_isolation_level(self, value: Any) -> None:
        virtual: Any = self.virtual
        virtual.isolation_level = value

    async def set_read_only(self, value: Any) -> None:
        virtual: Any = self.virtual
        virtual.read_only = value

    async def set_deferrable(self, value: Any) -> None:
        virtual: Any = self.virtual
        virtual.deferrable = value


class _Queue:
    """aiosqlite's private request queue, which SQLAlchemy's isolation-level setter
    fills: each ``(future, function)`` is run at once."""

    def put_nowait(self, item: tuple[Any, Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class AiosqliteFacade(AsyncConnectionFacade):
    """aiosqlite's ``Connection`` (its worker thread never starts)."""

    _tx = _Queue()

    @property
    def _conn(self) -> VirtualConnection:
        return self.virtual

    @property
    def _connection(self) -> bool:
        return not self.virtual._closed

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self.virtual.create_function(*args, **kw)

    def stop(self) -> None:
        self.virtual.close()


class MySQLAsyncFacade(AsyncConnectionFacade):
    """aiomysql's and asyncmy's ``Connection`` (over PyMySQL)."""

    async def ping(self, reconnect: bool = False) -> None:
        return None

    async def autocommit(self, value: bool) -> None:
        self.virtual.autocommit(value)

    async def ensure_closed(self) -> None:
        self.virtual.close()

    def close(self) -> None:  # type: ignore[override]  # aiomysql's close() is sync
        self.virtual.close()


class AsyncmyFacade(MySQLAsyncFacade):
    """asyncmy raises its own exception classes: PyMySQL's are raised as those."""

    def _call(self, function: Callable[..., T], *args: Any, **kw: Any) -> T:
        import asyncmy.errors
        import pymysql  # type: ignore[import-untyped,unused-ignore]

        try:
            return function(*args, **kw)
        except pymysql.err.Error as exc:
            cls = getattr(asyncmy.errors, type(exc).__name__, asyncmy.errors.Error)
            raise cls(*exc.args) from exc


@dataclass(frozen=True)
class AsyncDriver:
    """An async driver routed over a sync one: SQLAlchemy's driver names (``dialect.driver``),
    the facade class, and pytest-alchemy's pip extra that installs both drivers."""

    name: str
    sync: str
    facade: Callable[[VirtualConnection], AsyncConnectionFacade]
    extra: str
    #: ``dialect.driver`` of its async dialect, when not ``name`` (psycopg's is "psycopg").
    dialect_driver: str = ""


_DRIVERS: dict[str, AsyncDriver] = {}


def register(driver: AsyncDriver) -> None:
    _DRIVERS[driver.name] = driver


for _driver in (
    AsyncDriver("psycopg_async", "psycopg", PsycopgAsyncFacade, "psycopg-async", "psycopg"),
    AsyncDriver("aiosqlite", "pysqlite", AiosqliteFacade, "aiosqlite"),
    AsyncDriver("aiomysql", "pymysql", MySQLAsyncFacade, "aiomysql"),
    AsyncDriver("asyncmy", "pymysql", AsyncmyFacade, "asyncmy"),
):
    register(_driver)


def async_driver(name: str) -> AsyncDriver | None:
    """The routed async driver SQLAlchemy calls ``name``; None if it is not one."""
    return _DRIVERS.get(name)


def async_driver_of(dialect: Any) -> AsyncDriver | None:
    """The routed async driver of an async dialect; None if it is not one."""
    if not getattr(dialect, "is_async", False):
        return None
    for driver in _DRIVERS.values():
        if (driver.dialect_driver or driver.name) == dialect.driver:
            return driver
    return None


def async_drivers() -> list[AsyncDriver]:
    return list(_DRIVERS.values())


def virtual_of(dbapi_connection: Any) -> VirtualConnection | None:
    """The virtual connection under a pool's connection (itself, or an adapted async one)."""
    if isinstance(dbapi_connection, VirtualConnection):
        return dbapi_connection
    facade = getattr(dbapi_connection, "_connection", None)
    if isinstance(facade, AsyncConnectionFacade):
        return facade.virtual
    return None


from . import _asyncpg  # noqa: E402, F401  # registers "asyncpg" (imports neither driver)
