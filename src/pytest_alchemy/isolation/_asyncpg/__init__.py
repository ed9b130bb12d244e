"""asyncpg's ``Connection``, emulated over a sync psycopg 3 (virtual) connection.

SQLAlchemy's ``AsyncAdapt_asyncpg_connection`` is not cursor-shaped: it prepares each
statement (``prepare()``, then ``get_attributes()`` for the result's columns before it
runs), runs it with ``fetch(*args)``, reads the row count from ``get_statusmsg()``, opens
transactions with ``transaction(...).start()`` and decodes JSON through codecs set with
``set_type_codec``. This facade answers all of that at once over psycopg:

- a statement is described (its columns and parameters, without running it) on the
  driver's own connection, inside a savepoint of its own when a transaction is open, so a
  statement that cannot be prepared raises as asyncpg's ``prepare()`` does and leaves the
  transaction as it was; it then runs through a cursor of the (virtual) connection, its
  ``$1`` placeholders translated to psycopg's (literal ``%`` kept);
- arguments are checked against the parameters' described types before it runs, as
  asyncpg checks them (``_checks``): what asyncpg refuses raises its ``DataError``;
- rows come back as :class:`Record` (by position, by name); JSON and JSONB as text,
  or decoded by the codecs set on the connection; ``bit`` as asyncpg's ``BitString``;
- psycopg's errors are raised as asyncpg's exception class for their SQLSTATE;
- a top-level ``transaction()`` is the connection's own transaction (``commit()``,
  ``rollback()``; the plugin's virtual connection makes it a savepoint), a nested one a
  savepoint; statements outside any transaction run in autocommit mode, as with asyncpg.

Neither asyncpg nor psycopg is imported until a facade is used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._facades import AsyncConnectionFacade, AsyncDriver, register
from ._checks import Encoder, checked, encoders
from ._errors import _count_error, _interface_error, _result_error, asyncpg_error
from ._sql import translate
from ._statements import _ISOLATION, Cursor, CursorFactory, PreparedStatement, Transaction
from ._values import (
    JSON_OID,
    JSONB_OID,
    Attribute,
    Record,
    ServerVersion,
    Type,
    _default_loaders,
    _loader,
    _parameter,
    _records,
)

if TYPE_CHECKING:
    from psycopg.adapt import Loader

__all__ = [
    "AsyncpgFacade",
    "Attribute",
    "Cursor",
    "CursorFactory",
    "PreparedStatement",
    "Record",
    "ServerVersion",
    "Transaction",
    "Type",
    "asyncpg_error",
    "translate",
]

T = TypeVar("T")


class AsyncpgFacade(AsyncConnectionFacade):
    """asyncpg's ``Connection`` over a psycopg 3 (virtual) connection."""

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"pytest-alchemy: asyncpg's Connection.{name} is not emulated on the test's "
            "connection (pytest-alchemy answers the asyncpg API SQLAlchemy uses, plus "
            "execute, fetch, fetchrow, fetchval, prepare, cursor and transaction)."
        )

    def __init__(self, virtual: Any) -> None:
        super().__init__(virtual)
        self._transactions: list[Transaction] = []
        self._codecs: dict[int, type[Loader]] = {}
        self._encoders: dict[int, Encoder] = {}
        self._terminated = False

    # -- errors and plumbing -------------------------------------------------------------

    def _call(self, function: Callable[..., T], *args: Any, **kw: Any) -> T:
        import psycopg

        try:
            return function(*args, **kw)
        except psycopg.Error as exc:
            raise asyncpg_error(exc) from exc

    @property
    def _encoding(self) -> str:
        return str(self.virtual.info.encoding)

    def _outside_transaction(self) -> None:
        """asyncpg runs statements outside a transaction in autocommit mode."""
        if not self._transactions and not self.virtual.autocommit:
            self._call(setattr, self.virtual, "autocommit", True)

    def _begin(self, isolation: str | None, readonly: bool, deferrable: bool) -> None:
        """The connection's next transaction, with these characteristics (kept by the
        plugin's virtual connection, never set on the shared one)."""
        import psycopg

        virtual = self.virtual
        settings = {
            "autocommit": False,
            "isolation_level": None
            if isolation is None
            else psycopg.IsolationLevel[_ISOLATION[isolation]],
            "read_only": True if readonly else None,
            "deferrable": True if deferrable else None,
        }
        for name, value in settings.items():
            if getattr(virtual, name) != value:
                self._call(setattr, virtual, name, value)

    def _cursor(self) -> Any:
        cursor = self.virtual.cursor()
        adapters = cursor.adapters
        for oid, loader in {**_default_loaders(self._encoding), **self._codecs}.items():
            adapters.register_loader(oid, loader)
        return cursor

    def _checks(self, query: str, parameters: Sequence[Type] | None) -> list[Encoder | None]:
        """Each parameter's check (see ``_checks``), the statement described if its
        parameters are not known yet."""
        if parameters is None:
            parameters = self._describe(query)[1]
        return encoders([parameter.oid for parameter in parameters], self._encoders)

    def _arguments(
        self,
        query: str,
        args: Sequence[Any],
        parameters: Sequence[Type] | None = None,
        row: int | None = None,
    ) -> tuple[str, list[Any] | None]:
        """The query as psycopg takes it and its arguments, checked as asyncpg checks
        them against the parameters' types (``parameters``, or asked of the server)."""
        sql, order = translate(query)
        expected = max(order) + 1 if order else 0
        if expected != len(args):
            raise _count_error(expected, len(args))
        if not order:
            return query, None
        values = checked(self._checks(query, parameters), args, row)
        return sql, [_parameter(values[index]) for index in order]

    def _run(
        self, query: str, args: Sequence[Any], parameters: Sequence[Type] | None = None
    ) -> tuple[list[Record], str | None]:
        """Run ``query`` through a cursor of the connection: its rows and status."""
        sql, params = self._arguments(query, args, parameters)
        if not query.strip(" \t\r\n;"):  # asyncpg's ping: an empty query, nothing to run
            return [], None
        import psycopg

        self._outside_transaction()
        cursor = self._cursor()
        try:
            if params is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, params)
            description = cursor.description
            rows = cursor.fetchall() if description is not None else []
            status = cursor.statusmessage
        except psycopg.Error as exc:
            raise asyncpg_error(exc, query) from exc
        finally:
            cursor.close()
        return _records(description, rows), status

    def _run_many(
        self, query: str, args: Sequence[Sequence[Any]], parameters: Sequence[Type] | None = None
    ) -> None:
        """All rows are checked before any runs."""
        import psycopg

        args = list(args)
        if not args:
            return
        if parameters is None and any(args):
            parameters = self._describe(query)[1]
        rows = [
            self._arguments(query, one, parameters, row)[1] or [] for row, one in enumerate(args)
        ]
        sql = translate(query)[0]
        self._outside_transaction()
        cursor = self._cursor()
        try:
            cursor.executemany(sql, rows)
        except psycopg.Error as exc:
            raise asyncpg_error(exc, query) from exc
        finally:
            cursor.close()

    def _describe(self, query: str) -> tuple[tuple[Attribute, ...], tuple[Type, ...]]:
        """The columns and parameters of ``query``, asked of the server without running
        it (libpq's prepare and describe of the unnamed statement), in a savepoint when
        a transaction is open: if it fails, the transaction is as it was."""
        from psycopg import pq

        virtual, encoding = self.virtual, self._encoding
        pgconn = virtual.pgconn
        ok = pq.ExecStatus.COMMAND_OK

        def raw(sql: bytes) -> None:
            result = pgconn.exec_(sql)
            if result.status != ok:
                raise _result_error(result, encoding, sql.decode())

        with virtual.lock:
            guard = pgconn.transaction_status == pq.TransactionStatus.INTRANS
            if guard:
                raw(b"SAVEPOINT _pa_asyncpg_describe")
            result = pgconn.prepare(b"", query.encode(encoding))
            if result.status == ok:
                result = pgconn.describe_prepared(b"")
            if guard:
                if result.status != ok:
                    raw(b"ROLLBACK TO SAVEPOINT _pa_asyncpg_describe")
                raw(b"RELEASE SAVEPOINT _pa_asyncpg_describe")
        if result.status != ok:
            raise _result_error(result, encoding, query)
        attributes = tuple(
            Attribute((result.fname(i) or b"").decode(encoding), self._type(result.ftype(i)))
            for i in range(result.nfields)
        )
        parameters = tuple(self._type(result.param_type(i)) for i in range(result.nparams))
        return attributes, parameters

    def _type(self, oid: int) -> Type:
        info = self.virtual.adapters.types.get(oid)
        if info is None:
            return Type(oid, "", "scalar", "")
        if info.array_oid == oid:
            return Type(oid, f"_{info.name}", "array", "pg_catalog")
        return Type(oid, info.name, "scalar", "pg_catalog")

    # -- asyncpg's API ---------------------------------------------------------------------

    async def prepare(
        self, query: str, *, name: str | None = None, timeout: Any = None, record_class: Any = None
    ) -> PreparedStatement:
        attributes, parameters = self._describe(query)
        return PreparedStatement(self, query, name or "", attributes, parameters)

    async def execute(self, query: str, *args: Any, timeout: Any = None) -> str | None:
        return self._run(query, args)[1]

    async def executemany(
        self, command: str, args: Sequence[Sequence[Any]], *, timeout: Any = None
    ) -> None:
        self._run_many(command, args)

    async def fetch(
        self, query: str, *args: Any, timeout: Any = None, record_class: Any = None
    ) -> list[Record]:
        return self._run(query, args)[0]

    async def fetchrow(
        self, query: str, *args: Any, timeout: Any = None, record_class: Any = None
    ) -> Record | None:
        rows = self._run(query, args)[0]
        return rows[0] if rows else None

    async def fetchval(self, query: str, *args: Any, column: int = 0, timeout: Any = None) -> Any:
        rows = self._run(query, args)[0]
        return rows[0][column] if rows else None

    def cursor(  # type: ignore[override]  # asyncpg's cursor() takes a query
        self,
        query: str,
        *args: Any,
        prefetch: int | None = None,
        timeout: Any = None,
        record_class: Any = None,
    ) -> CursorFactory:
        return CursorFactory(self, query, args)

    def transaction(
        self, *, isolation: str | None = None, readonly: bool = False, deferrable: bool = False
    ) -> Transaction:
        return Transaction(self, isolation, readonly, deferrable)

    def is_in_transaction(self) -> bool:
        return bool(self._transactions)

    async def set_type_codec(
        self,
        typename: str,
        *,
        schema: str = "public",
        encoder: Callable[[Any], Any],
        decoder: Callable[[Any], Any],
        format: str = "text",
    ) -> None:
        """Results of the type are decoded with ``decoder`` (arguments are passed to
        psycopg as they are: SQLAlchemy sends JSON as text; ``encoder`` checks them, what
        it refuses raises asyncpg's ``DataError``). The ``binary`` format is
        emulated for JSON and JSONB, whose binary forms are their text (JSONB's after a
        version byte)."""
        oid = self._type_oid(typename, schema)
        encoding = self._encoding
        decode: Callable[[bytes], Any]
        if format == "text":

            def decode(data: bytes) -> Any:
                return decoder(data.decode(encoding))

        elif format == "binary" and oid == JSON_OID:
            decode = decoder
        elif format == "binary" and oid == JSONB_OID:

            def decode(data: bytes) -> Any:
                return decoder(b"\x01" + data)

        else:
            raise _interface_error(
                f"pytest-alchemy's asyncpg emulation decodes {format!r} codecs for JSON and "
                f"JSONB only, not for {schema}.{typename}"
            )
        self._codecs[oid] = _loader(decode)
        self._encoders[oid] = encoder

    async def reset_type_codec(self, typename: str, *, schema: str = "public") -> None:
        oid = self._type_oid(typename, schema)
        self._codecs.pop(oid, None)
        self._encoders.pop(oid, None)

    def _type_oid(self, typename: str, schema: str) -> int:
        info = self.virtual.adapters.types.get(typename)
        if schema == "pg_catalog" and info is not None:
            return int(info.oid)

        def quote(name: str) -> str:
            return '"' + name.replace('"', '""') + '"'

        attributes, _ = self._describe(f"SELECT NULL::{quote(schema)}.{quote(typename)}")
        return attributes[0].type.oid

    async def reload_schema_state(self) -> None:
        return None

    def get_server_version(self) -> ServerVersion:
        number = int(self.virtual.info.server_version)
        if number >= 100000:
            return ServerVersion(number // 10000, 0, number % 10000, "final", 0)
        return ServerVersion(number // 10000, number // 100 % 100, number % 100, "final", 0)

    def get_server_pid(self) -> int:
        return int(self.virtual.info.backend_pid)

    def is_closed(self) -> bool:
        virtual = self.virtual
        return self._terminated or bool(virtual._closed) or bool(virtual.closed)

    async def close(self, *, timeout: Any = None) -> None:
        self._transactions.clear()
        self.virtual.close()

    def terminate(self) -> None:
        self._terminated = True
        self._transactions.clear()
        self.virtual.close()


register(AsyncDriver("asyncpg", "psycopg", AsyncpgFacade, "asyncpg"))
