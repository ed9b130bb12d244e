"""Routing async engines: their pools make the dialect's adapted connections over async
facades of virtual connections (see :mod:`._facades`), and what SQLAlchemy does with them
outside an event loop (closing, disposing) runs in a greenlet of its own, at once.

``sqlalchemy.ext.asyncio`` is imported only when an async object is met (it needs the
greenlet package, optional in SQLAlchemy 2.1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import URL, Dialect, Engine
from sqlalchemy.pool import Pool

from .._errors import SettingError
from ._facades import async_driver, async_driver_of, async_drivers, run_now
from ._ledger import Ledger
from ._virtual import VirtualConnection

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine as AsyncEngine
else:
    AsyncEngine = Any

T = TypeVar("T")


def sync_engine_of(engine: Engine | AsyncEngine) -> Engine:
    """The Engine itself, or the one an AsyncEngine proxies (``sync_engine``)."""
    sync = getattr(engine, "sync_engine", None)
    return sync if isinstance(sync, Engine) else engine  # type: ignore[return-value]


def in_greenlet(function: Callable[[], T], what: str) -> T:
    """Call ``function`` (sync SQLAlchemy code over async connections) in a greenlet, as
    ``AsyncConnection.run_sync`` does, to its end now (see :func:`run_now`)."""
    from sqlalchemy.util import greenlet_spawn

    return run_now(greenlet_spawn(function), what)


def dispose(pool: Pool) -> None:
    """Close the pool's idle connections; an async pool's in a greenlet."""
    if getattr(pool, "_is_asyncio", False) or getattr(pool._dialect, "is_async", False):
        in_greenlet(pool.dispose, "disposing an async engine's pool")
    else:
        pool.dispose()


def async_creator(
    dialect: Dialect, make: Callable[[], VirtualConnection], ledger: Ledger
) -> Callable[[Any], Any]:
    """A pool creator for an async dialect: the dialect's adapted connection over a facade
    of a new virtual connection, made through the dialect's ``async_creator_fn`` path
    (what ``create_async_engine(async_creator=...)`` documents)."""
    driver = async_driver_of(dialect)
    if driver is None:
        raise SettingError(_unsupported(dialect))
    _prepare(dialect, ledger)

    async def facade() -> Any:
        return driver.facade(make())

    def create(record: Any) -> Any:
        return dialect.loaded_dbapi.connect(async_creator_fn=facade)

    return create


def _prepare(dialect: Dialect, ledger: Ledger) -> None:
    """psycopg's dialect fetches the hstore type with psycopg's ``TypeInfo.fetch``, which
    tells a sync connection from an async one by its class: let it ask the shared one."""
    if dialect.is_async and dialect.driver == "psycopg":
        from psycopg.types import TypeInfo

        def fetch(connection: Any, name: str) -> Any:
            return TypeInfo.fetch(ledger.dbapi(), name)

        dialect._type_info_fetch = fetch  # type: ignore[attr-defined]


def _unsupported(dialect: Dialect) -> str:
    names = ", ".join(f"{d.name} (over {d.sync})" for d in async_drivers())
    return (
        f"pytest-alchemy: the async driver {dialect.driver!r} ({dialect.name}) cannot share "
        f"the test's connection.\nFix: use one of {names}."
    )


# -- URLs: an async driver and the sync one it runs over --------------------------------


def sync_url(url: URL) -> URL:
    """``url`` with the sync driver its async driver runs over (itself if it is sync)."""
    driver = async_driver(_driver_name(url))
    if driver is None:
        return url
    return url.set(drivername=f"{url.get_backend_name()}+{driver.sync}")


def async_url(url: URL, source: str, driver_name: str | None = None) -> URL:
    """``url`` (sync) with an async driver over its sync one: ``driver_name``, else the
    first registered (psycopg_async, aiosqlite, aiomysql). Raises SettingError when no
    async driver runs over the sync one, or when the async driver is not installed."""
    sync = _driver_name(url)
    candidates = [d for d in async_drivers() if d.sync == sync]
    if driver_name is not None:
        candidates = [d for d in candidates if d.name == driver_name]
    if not candidates:
        known = ", ".join(f"{d.name} over {d.sync}" for d in async_drivers())
        wanted = f"the async driver {driver_name!r}" if driver_name else "an async driver"
        raise SettingError(
            f"pytest-alchemy: {wanted} cannot run over {source}'s driver {sync!r} "
            f"({url.drivername}://...), which the test's shared connection uses.\nFix: use a "
            f"sync driver an async one runs over in alchemy_url ({known}), for example "
            "postgresql+psycopg://, sqlite:// or mysql+pymysql://."
        )
    made = url.set(drivername=f"{url.get_backend_name()}+{candidates[0].name}")
    check_async_driver(made, source)
    return made


def check_async_driver(url: URL, source: str) -> None:
    """Raise SettingError naming the pip extra when the async driver (or greenlet) is
    missing."""
    driver = async_driver(_driver_name(url))
    if driver is None:
        return
    try:
        import greenlet  # type: ignore[import-untyped,unused-ignore]  # noqa: F401

        url.get_dialect().import_dbapi()
    except ImportError as exc:
        raise SettingError(
            f"pytest-alchemy: the async driver {driver.name!r} for {source} "
            f"({url.drivername}://...) is not installed ({exc}).\nFix: pip install "
            f"'pytest-alchemy[{driver.extra}]'."
        ) from None


def _driver_name(url: URL) -> str:
    try:
        return url.get_driver_name()
    except Exception:  # an unknown dialect: nothing async about it
        return url.drivername


# -- objects of sqlalchemy.ext.asyncio, recognised without importing it -----------------


def is_async_object(obj: Any, *names: str) -> bool:
    """Whether ``obj`` is one of the named classes of ``sqlalchemy.ext.asyncio`` (which is
    imported only when ``obj`` comes from there: it needs greenlet)."""
    modules = (cls.__dict__.get("__module__") for cls in type(obj).__mro__)
    if not any(isinstance(m, str) and m.startswith("sqlalchemy.ext.asyncio") for m in modules):
        return False
    from sqlalchemy.ext import asyncio as sa_asyncio

    return isinstance(obj, tuple(getattr(sa_asyncio, name) for name in names))


class AsyncScoped:
    """An ``async_scoped_session`` whose ``remove()`` (a coroutine) runs at once."""

    def __init__(self, scoped: Any) -> None:
        self.scoped = scoped

    def remove(self) -> None:
        run_now(self.scoped.remove(), "closing an async_scoped_session's sessions")


def shared_driver(engine: Engine | AsyncEngine) -> str:
    """The sync driver ``engine``'s connections run on: its own, or the one its async
    driver runs over."""
    dialect = sync_engine_of(engine).dialect
    driver = async_driver_of(dialect)
    return driver.sync if driver is not None else dialect.driver
