"""asyncpg's ``PreparedStatement``, ``Cursor``, ``cursor()`` factory and ``Transaction``,
each run through the :class:`AsyncpgFacade` that made it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

from .._ledger import refusals_deferred
from ._errors import _count_error, _interface_error
from ._values import Attribute, Record, Type, _asyncpg

if TYPE_CHECKING:
    from . import AsyncpgFacade


class PreparedStatement:
    """asyncpg's ``PreparedStatement``: a described statement, run with arguments."""

    def __init__(
        self,
        facade: AsyncpgFacade,
        query: str,
        name: str,
        attributes: tuple[Attribute, ...],
        parameters: tuple[Type, ...],
    ) -> None:
        self._facade = facade
        self._query = query
        self._name = name
        self._attributes = attributes
        self._parameters = parameters
        self._status: str | None = None

    def get_name(self) -> str:
        return self._name

    def get_query(self) -> str:
        return self._query

    def get_statusmsg(self) -> str | None:
        return self._status

    def get_parameters(self) -> tuple[Type, ...]:
        return self._parameters

    def get_attributes(self) -> tuple[Attribute, ...]:
        return self._attributes

    def _run(self, args: Sequence[Any]) -> list[Record]:
        if len(args) != len(self._parameters):
            raise _count_error(len(self._parameters), len(args))
        rows, self._status = self._facade._run(self._query, args, self._parameters)
        return rows

    async def fetch(self, *args: Any, timeout: float | None = None) -> list[Record]:
        return self._run(args)

    async def fetchmany(self, args: Sequence[Sequence[Any]], *, timeout: Any = None) -> Any:
        return [row for one in args for row in self._run(one)]

    async def fetchrow(self, *args: Any, timeout: float | None = None) -> Record | None:
        rows = self._run(args)
        return rows[0] if rows else None

    async def fetchval(self, *args: Any, column: int = 0, timeout: float | None = None) -> Any:
        rows = self._run(args)
        return rows[0][column] if rows else None

    async def executemany(self, args: Sequence[Sequence[Any]], *, timeout: Any = None) -> None:
        self._facade._run_many(self._query, args, self._parameters)

    def cursor(self, *args: Any, prefetch: int | None = None, timeout: Any = None) -> CursorFactory:
        return CursorFactory(self._facade, self._query, args, self._parameters)


class Cursor:
    """asyncpg's ``Cursor`` (what ``stream()`` reads): the rows are read when it opens."""

    def __init__(self, rows: list[Record]) -> None:
        self._rows = rows
        self._position = 0

    async def fetch(self, n: int, *, timeout: Any = None) -> list[Record]:
        rows = self._rows[self._position : self._position + n]
        self._position += len(rows)
        return rows

    async def fetchrow(self, *, timeout: Any = None) -> Record | None:
        rows = await self.fetch(1)
        return rows[0] if rows else None

    async def forward(self, n: int, *, timeout: Any = None) -> int:
        return len(await self.fetch(n))


class CursorFactory:
    """What asyncpg's ``cursor()`` returns: awaited, a :class:`Cursor`; iterated, rows.
    As with asyncpg, only inside a transaction."""

    def __init__(
        self,
        facade: AsyncpgFacade,
        query: str,
        args: Sequence[Any],
        parameters: Sequence[Type] | None = None,
    ) -> None:
        self._facade = facade
        self._query = query
        self._args = args
        self._parameters = parameters

    async def _open(self) -> Cursor:
        if not self._facade._transactions:
            asyncpg = _asyncpg()
            raise asyncpg.exceptions.NoActiveSQLTransactionError(
                "cursor cannot be created outside of a transaction"
            )
        return Cursor(self._facade._run(self._query, self._args, self._parameters)[0])

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._open().__await__()

    async def __aiter__(self) -> AsyncIterator[Record]:
        cursor = await self._open()
        while (row := await cursor.fetchrow()) is not None:
            yield row


_ISOLATION = {
    "read_uncommitted": "READ_UNCOMMITTED",
    "read_committed": "READ_COMMITTED",
    "repeatable_read": "REPEATABLE_READ",
    "serializable": "SERIALIZABLE",
}

_savepoints = itertools.count(1)


class Transaction:
    """asyncpg's ``Transaction``: the connection's own transaction, or a savepoint in it."""

    def __init__(
        self, facade: AsyncpgFacade, isolation: str | None, readonly: bool, deferrable: bool
    ) -> None:
        if isolation is not None and isolation not in _ISOLATION:
            raise ValueError(f"isolation is expected to be one of {list(_ISOLATION)}")
        self._facade = facade
        self._isolation = isolation
        self._readonly = readonly
        self._deferrable = deferrable
        self._savepoint: str | None = None
        self._state = "new"

    def _expect(self, action: str) -> None:
        if self._state != "started":
            why = "not yet started" if self._state == "new" else f"already {self._state}"
            raise _interface_error(f"cannot {action}; the transaction is {why}")

    async def start(self) -> None:
        if self._state != "new":
            raise _interface_error(f"cannot start; the transaction is already {self._state}")
        facade = self._facade
        if facade._transactions:
            self._savepoint = f"_pa_asyncpg_{next(_savepoints)}"
            facade._run(f"SAVEPOINT {self._savepoint}", ())
        else:
            facade._begin(self._isolation, self._readonly, self._deferrable)
        facade._transactions.append(self)
        self._state = "started"

    def _end(self, action: str, state: str, top: Callable[[], None], *nested: str) -> None:
        self._expect(action)
        facade = self._facade
        try:
            if self._savepoint is None:
                facade._call(top)
            else:
                for sql in nested:
                    facade._run(f"{sql} {self._savepoint}", ())
        finally:
            if self in facade._transactions:
                del facade._transactions[facade._transactions.index(self) :]
            self._state = state

    async def commit(self) -> None:
        self._end("commit", "committed", self._facade.virtual.commit, "RELEASE SAVEPOINT")

    async def rollback(self) -> None:
        with refusals_deferred():  # as every async front's rollback (see the facades)
            self._end(
                "rollback",
                "rolled back",
                self._facade.virtual.rollback,
                "ROLLBACK TO SAVEPOINT",
                "RELEASE SAVEPOINT",
            )

    async def __aenter__(self) -> Transaction:
        await self.start()
        return self

    async def __aexit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            await self.commit()
        else:
            await self.rollback()
