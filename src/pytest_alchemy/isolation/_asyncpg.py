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
- rows come back as :class:`Record` (by position, by name); JSON and JSONB as text,
  or decoded by the codecs set on the connection; ``bit`` as asyncpg's ``BitString``;
- psycopg's errors are raised as asyncpg's exception class for their SQLSTATE;
- a top-level ``transaction()`` is the connection's own transaction (``commit()``,
  ``rollback()``; the plugin's virtual connection makes it a savepoint), a nested one a
  savepoint; statements outside any transaction run in autocommit mode, as with asyncpg.

Neither asyncpg nor psycopg is imported until a facade is used.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ._facades import AsyncConnectionFacade, AsyncDriver, register

if TYPE_CHECKING:
    from psycopg.adapt import Loader

T = TypeVar("T")


def _asyncpg() -> Any:
    """The asyncpg module (imported when a facade is first used)."""
    import asyncpg  # type: ignore[import-untyped,unused-ignore]

    return asyncpg


# -- placeholders ------------------------------------------------------------------------

_TOKENS = re.compile(
    r"""
    (?P<skip>
        (?<![\w$])[Ee]'(?:[^'\\]|\\.|'')*'      # escape string
      | '(?:[^']|'')*'                          # string
      | "(?:[^"]|"")*"                          # quoted identifier
      | --[^\n]*                                # line comment
      | /\*.*?\*/                               # block comment
      | (?<![\w$])(?P<tag>\$(?:[^\W\d]\w*)?\$).*?(?P=tag)  # dollar-quoted string
    )
    | (?<![\w$])\$(?P<number>\d+)               # a parameter
    """,
    re.VERBOSE | re.DOTALL,
)


@functools.lru_cache(maxsize=512)
def translate(query: str) -> tuple[str, tuple[int, ...]]:
    """``query`` with psycopg's placeholders for asyncpg's (``$2`` -> ``%s``), and the
    (0-based) argument each one takes. Every literal ``%`` is doubled, as psycopg reads
    them all; ``$n`` inside strings, quoted names and comments is left alone."""
    order: list[int] = []

    def replace(match: re.Match[str]) -> str:
        number = match.group("number")
        if number is not None:
            order.append(int(number) - 1)
            return "%s"
        return match.group(0).replace("%", "%%")

    parts: list[str] = []
    end = 0
    for match in _TOKENS.finditer(query):
        parts.append(query[end : match.start()].replace("%", "%%"))
        parts.append(replace(match))
        end = match.end()
    parts.append(query[end:].replace("%", "%%"))
    return "".join(parts), tuple(order)


# -- what asyncpg returns ----------------------------------------------------------------


class Type(NamedTuple):
    """asyncpg's ``types.Type``: a column's or parameter's type."""

    oid: int
    name: str
    kind: str
    schema: str


class Attribute(NamedTuple):
    """asyncpg's ``types.Attribute``: a result column."""

    name: str
    type: Type


class ServerVersion(NamedTuple):
    major: int
    minor: int
    micro: int
    releaselevel: str
    serial: int


class Record:
    """asyncpg's ``Record``: a row read by position (as SQLAlchemy reads it) or by name."""

    __slots__ = ("_keys", "_values")

    def __init__(self, keys: dict[str, int], values: Sequence[Any]) -> None:
        self._keys = keys
        self._values = tuple(values)

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            return self._values[self._keys[key]]
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._keys

    def get(self, key: str, default: Any = None) -> Any:
        index = self._keys.get(key)
        return default if index is None else self._values[index]

    def keys(self) -> Iterator[str]:
        return iter(self._keys)

    def values(self) -> Iterator[Any]:
        return iter(self._values)

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((name, self._values[index]) for name, index in self._keys.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            return self._values == other._values
        if isinstance(other, tuple):
            return self._values == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        fields = " ".join(f"{name}={value!r}" for name, value in self.items())
        return f"<Record {fields}>"


def _records(description: Any, rows: Sequence[Sequence[Any]]) -> list[Record]:
    keys: dict[str, int] = {}
    for index, column in enumerate(description or ()):
        keys.setdefault(column.name, index)
    return [Record(keys, row) for row in rows]


# -- errors ------------------------------------------------------------------------------

#: asyncpg's error-field codes and psycopg's ``Diagnostic`` attribute for each.
_FIELDS = (
    ("S", "severity"),
    ("V", "severity_nonlocalized"),
    ("C", "sqlstate"),
    ("M", "message_primary"),
    ("D", "message_detail"),
    ("H", "message_hint"),
    ("P", "statement_position"),
    ("p", "internal_position"),
    ("q", "internal_query"),
    ("W", "context"),
    ("s", "schema_name"),
    ("t", "table_name"),
    ("c", "column_name"),
    ("d", "datatype_name"),
    ("n", "constraint_name"),
    ("F", "source_file"),
    ("L", "source_line"),
    ("R", "source_function"),
)


def _server_error(fields: dict[str, str], query: str | None) -> Exception:
    """asyncpg's exception for a server error (its class chosen by the SQLSTATE)."""
    asyncpg = _asyncpg()
    return asyncpg.PostgresError.new(fields, query=query)  # type: ignore[no-any-return]


def asyncpg_error(error: Exception, query: str | None = None) -> Exception:
    """The exception asyncpg raises where psycopg raised ``error`` (anything not
    psycopg's is returned as it is)."""
    asyncpg = _asyncpg()
    import psycopg

    if not isinstance(error, psycopg.Error):
        return error
    diag = error.diag
    if diag.sqlstate:
        fields = {
            code: str(value)
            for code, name in _FIELDS
            if (value := getattr(diag, name, None)) is not None
        }
        return _server_error(fields, query)
    exceptions = asyncpg.exceptions
    cls: type[Exception] = exceptions.InternalClientError
    if isinstance(error, psycopg.OperationalError):
        cls = exceptions.ConnectionDoesNotExistError
    elif isinstance(error, psycopg.DataError):
        cls = exceptions.DataError
    elif isinstance(error, (psycopg.InterfaceError, psycopg.ProgrammingError)):
        cls = exceptions.InterfaceError
    return cls(str(error))


def _result_error(result: Any, encoding: str, query: str | None) -> Exception:
    """asyncpg's exception for a failed libpq result."""
    fields = {}
    for code, _ in _FIELDS:
        value = result.error_field(ord(code))
        if value is not None:
            fields[code] = bytes(value).decode(encoding, "replace")
    return _server_error(fields, query)


def _interface_error(message: str) -> Exception:
    asyncpg = _asyncpg()
    return asyncpg.exceptions.InterfaceError(message)  # type: ignore[no-any-return]


def _count_error(expected: int, passed: int) -> Exception:
    return _interface_error(
        f"the server expects {expected} argument{'s' if expected != 1 else ''} for this "
        f"query, {passed} {'were' if passed != 1 else 'was'} passed"
    )


# -- values ------------------------------------------------------------------------------

JSON_OID, JSONB_OID, BIT_OID, VARBIT_OID = 114, 3802, 1560, 1562
INT2VECTOR_OID, OIDVECTOR_OID = 22, 30


def _loader(decode: Callable[[bytes], Any]) -> type[Loader]:
    """A psycopg (text) loader that hands the value's bytes to ``decode``."""
    from psycopg.adapt import Loader

    class CodecLoader(Loader):
        def load(self, data: Any) -> Any:
            return decode(bytes(data))

    return CodecLoader


@functools.lru_cache(maxsize=8)
def _default_loaders(encoding: str) -> dict[int, type[Loader]]:
    """How asyncpg returns what psycopg would return otherwise: JSON as text, bit
    strings as its ``BitString``, ``int2vector`` and ``oidvector`` (reflection reads
    them) as lists of ints."""
    asyncpg = _asyncpg()

    def text(data: bytes) -> str:
        return data.decode(encoding)

    def bits(data: bytes) -> Any:
        return asyncpg.BitString(data.decode("ascii"))

    def numbers(data: bytes) -> list[int]:
        return [int(number) for number in data.split()]

    as_text, as_bits, as_list = _loader(text), _loader(bits), _loader(numbers)
    return {
        JSON_OID: as_text,
        JSONB_OID: as_text,
        BIT_OID: as_bits,
        VARBIT_OID: as_bits,
        INT2VECTOR_OID: as_list,
        OIDVECTOR_OID: as_list,
    }


def _parameter(value: Any) -> Any:
    """An argument as psycopg takes it (asyncpg's own value types converted)."""
    asyncpg = _asyncpg()
    if isinstance(value, asyncpg.Range):
        from psycopg.types.range import Range

        if value.isempty:
            return Range(empty=True)
        bounds = ("[" if value.lower_inc else "(") + ("]" if value.upper_inc else ")")
        return Range(value.lower, value.upper, bounds)
    if isinstance(value, asyncpg.BitString):
        return value.as_string()
    if isinstance(value, list):
        return [_parameter(item) for item in value]
    return value


# -- prepared statements, cursors, transactions ------------------------------------------


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
        rows, self._status = self._facade._run(self._query, args)
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
        self._facade._run_many(self._query, args)

    def cursor(self, *args: Any, prefetch: int | None = None, timeout: Any = None) -> CursorFactory:
        return CursorFactory(self._facade, self._query, args)


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

    def __init__(self, facade: AsyncpgFacade, query: str, args: Sequence[Any]) -> None:
        self._facade = facade
        self._query = query
        self._args = args

    async def _open(self) -> Cursor:
        if not self._facade._transactions:
            asyncpg = _asyncpg()
            raise asyncpg.exceptions.NoActiveSQLTransactionError(
                "cursor cannot be created outside of a transaction"
            )
        return Cursor(self._facade._run(self._query, self._args)[0])

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


# -- the connection ----------------------------------------------------------------------


class AsyncpgFacade(AsyncConnectionFacade):
    """asyncpg's ``Connection`` over a psycopg 3 (virtual) connection."""

    def __init__(self, virtual: Any) -> None:
        super().__init__(virtual)
        self._transactions: list[Transaction] = []
        self._codecs: dict[int, type[Loader]] = {}
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

    def _arguments(self, query: str, args: Sequence[Any]) -> tuple[str, list[Any] | None]:
        sql, order = translate(query)
        expected = max(order) + 1 if order else 0
        if expected != len(args):
            raise _count_error(expected, len(args))
        if not order:
            return query, None
        return sql, [_parameter(args[index]) for index in order]

    def _run(self, query: str, args: Sequence[Any]) -> tuple[list[Record], str | None]:
        """Run ``query`` through a cursor of the connection: its rows and status."""
        sql, params = self._arguments(query, args)
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

    def _run_many(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        import psycopg

        rows = [self._arguments(query, one)[1] or [] for one in args]
        if not rows:
            return
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
        psycopg as they are: SQLAlchemy sends JSON as text). The ``binary`` format is
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

    async def reset_type_codec(self, typename: str, *, schema: str = "public") -> None:
        self._codecs.pop(self._type_oid(typename, schema), None)

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
