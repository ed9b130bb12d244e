"""Routing async engines: their pools make the dialect's adapted connections over async
facades of virtual connections (see :mod:`._facades`), and what SQLAlchemy does with them
outside an event loop (closing, disposing) runs in a greenlet of its own, at once.

``sqlalchemy.ext.asyncio`` is imported only when an async object is met (it needs the
greenlet package, optional in SQLAlchemy 2.1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.pool import Pool

from .._errors import SettingError
from ._facades import async_driver, run_now
from ._ledger import Ledger
from ._virtual import VirtualConnection

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
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
    driver = async_driver(dialect.driver)
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
    if dialect.driver == "psycopg_async" and not getattr(dialect, "_pa_prepared", False):
        from psycopg.types import TypeInfo

        def fetch(connection: Any, name: str) -> Any:
            return TypeInfo.fetch(ledger.dbapi(), name)

        dialect._type_info_fetch = fetch  # type: ignore[attr-defined]
        dialect._pa_prepared = True  # type: ignore[attr-defined]


def _unsupported(dialect: Dialect) -> str:
    from ._facades import async_drivers

    names = ", ".join(f"{d.name} (over {d.sync})" for d in async_drivers())
    return (
        f"pytest-alchemy: the async driver {dialect.driver!r} ({dialect.name}) cannot share "
        f"the test's connection.\nFix: use one of {names}."
    )
