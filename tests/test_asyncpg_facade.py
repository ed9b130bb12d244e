"""The asyncpg facade on its own: SQLAlchemy's asyncpg dialect over a sync psycopg 3
connection (``create_async_engine(async_creator=...)``), with no plugin in between.

Each check runs in its own ``asyncio.run()`` on a database of this module's, dropped at
the end. Without a reachable PostgreSQL server the module skips (fails under CI=true).
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import enum
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    Interval,
    LargeBinary,
    Numeric,
    String,
    Time,
    Uuid,
    bindparam,
    create_engine,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, INT4RANGE, JSONB, Range
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

from conftest import SERVERS, _reachable

psycopg = pytest.importorskip("psycopg")
asyncpg = pytest.importorskip("asyncpg")
pytest.importorskip("greenlet")

from sqlalchemy.ext.asyncio import (  # noqa: E402  # after the greenlet check
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    create_async_engine,
)

from pytest_alchemy.isolation._asyncpg import AsyncpgFacade, Record, translate  # noqa: E402
from pytest_alchemy.isolation._facades import async_driver  # noqa: E402

T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class Mood(enum.Enum):
    happy = "happy"
    sad = "sad"


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    created: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    label: Mapped[str] = mapped_column(String(20))


class Value(Base):
    """One column per type whose values must come back as they went in."""

    __tablename__ = "kinds"
    id: Mapped[int] = mapped_column(primary_key=True)
    doc = mapped_column(JSON)
    docb = mapped_column(JSONB)
    uid = mapped_column(Uuid)
    day = mapped_column(Date)
    stamp = mapped_column(DateTime)
    stamptz = mapped_column(DateTime(timezone=True))
    clock = mapped_column(Time)
    span = mapped_column(Interval)
    price = mapped_column(Numeric(12, 4))
    ratio = mapped_column(Float)
    big = mapped_column(BigInteger)
    flag = mapped_column(Boolean)
    blob = mapped_column(LargeBinary)
    words = mapped_column(ARRAY(String))
    numbers = mapped_column(ARRAY(Integer))
    mood = mapped_column(Enum(Mood, name="mood"))
    moods = mapped_column(ARRAY(Enum(Mood, name="mood")))
    docs = mapped_column(ARRAY(JSONB))
    during = mapped_column(INT4RANGE)


@pytest.fixture(scope="module")
def database() -> Iterator[URL]:
    """A database of this module's (its tables made by the sync psycopg dialect), dropped
    at the end."""
    env, default = SERVERS["postgresql"]
    server = make_url(os.environ.get(env, default))
    if not _reachable(server.render_as_string(False)):
        reason = f"postgresql server not reachable at {server.host}:{server.port}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: a backend may not be skipped)", pytrace=False)
        pytest.skip(f"{reason}; set {env} or start it (CI=true makes this a failure)")
    name = f"pa_asyncpg_{uuid.uuid4().hex[:10]}"
    with connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = server.set(database=name)
    engine = create_engine(url.set(drivername="postgresql+psycopg"), poolclass=NullPool)
    try:
        Base.metadata.create_all(engine)
        engine.dispose()
        yield url
    finally:
        engine.dispose()
        with connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def connect(url: URL, autocommit: bool = False) -> Any:
    """A real sync psycopg connection to ``url``."""
    return psycopg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password or "",
        dbname=url.database,
        autocommit=autocommit,
    )


def run(database: URL, body: Callable[[AsyncEngine], Awaitable[T]], **options: Any) -> T:
    """``body(engine)`` in a new event loop, on an asyncpg engine whose connections are
    facades over real sync psycopg connections; the engine is disposed after."""

    async def creator() -> AsyncpgFacade:
        return AsyncpgFacade(connect(database))

    async def main() -> T:
        engine = create_async_engine(
            database.set(drivername="postgresql+asyncpg"), async_creator=creator, **options
        )
        try:
            return await body(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


async def facade_of(conn: AsyncConnection) -> Any:
    """The driver connection under ``conn``: the facade."""
    return (await conn.get_raw_connection()).driver_connection


def query(database: URL, sql: str) -> list[tuple[Any, ...]]:
    """What another (sync psycopg) connection sees."""
    with connect(database) as conn:
        return list(conn.execute(sql).fetchall())


@pytest.fixture(autouse=True)
def _empty(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each database test starts and ends with empty tables."""
    yield
    if "database" in request.fixturenames:
        database: URL = request.getfixturevalue("database")
        with connect(database) as conn:
            conn.execute("TRUNCATE tags, items, kinds RESTART IDENTITY")


# -- no server needed --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected", "order"),
    [
        ("SELECT $1, $2", "SELECT %s, %s", (0, 1)),
        ("SELECT $2 + $1 + $2", "SELECT %s + %s + %s", (1, 0, 1)),
        ("SELECT $1 LIKE 'a%'", "SELECT %s LIKE 'a%%'", (0,)),
        ("SELECT 5 % $1", "SELECT 5 %% %s", (0,)),
        ("SELECT '$1', \"$2\", $1", "SELECT '$1', \"$2\", %s", (0,)),
        ("SELECT 'it''s $1', $1", "SELECT 'it''s $1', %s", (0,)),
        ("SELECT E'\\' $1', $1", "SELECT E'\\' $1', %s", (0,)),
        ("SELECT $$ $1 % $$, $1", "SELECT $$ $1 %% $$, %s", (0,)),
        ("SELECT $a$ $1 $a$, $1", "SELECT $a$ $1 $a$, %s", (0,)),
        ("SELECT $1 -- $2 %\n", "SELECT %s -- $2 %%\n", (0,)),
        ("SELECT /* $2 */ $1", "SELECT /* $2 */ %s", (0,)),
        ("SELECT a$1 FROM t", "SELECT a$1 FROM t", ()),
    ],
)
def test_placeholders_translate_to_psycopg_and_literals_survive(
    query: str, expected: str, order: tuple[int, ...]
) -> None:
    assert translate(query) == (expected, order)


def test_registered_as_the_asyncpg_driver() -> None:
    driver = async_driver("asyncpg")
    assert driver is not None
    assert (driver.sync, driver.facade, driver.extra) == ("psycopg", AsyncpgFacade, "asyncpg")


def test_records_read_by_position_and_by_name() -> None:
    record = Record({"a": 0, "b": 1}, (1, "x"))
    assert (record[0], record[-1], record["b"], record[:1], len(record)) == (1, "x", "x", (1,), 2)
    assert list(record) == [1, "x"]
    assert dict(record.items()) == {"a": 1, "b": "x"}
    assert record.get("c", 3) == 3
    assert "a" in record
    assert record == (1, "x")


# -- over a real connection --------------------------------------------------------------


def test_dialect_initialises_and_reads_the_server_version(database: URL) -> None:
    async def body(engine: AsyncEngine) -> tuple[Any, ...]:
        async with engine.connect() as conn:
            facade = await facade_of(conn)
            number = await conn.scalar(text("SHOW server_version_num"))
            return (
                engine.dialect.server_version_info,
                int(number or 0),
                engine.dialect.default_schema_name,
                type(facade),
            )

    version, number, schema, driver = run(database, body)
    assert version[0] == number // 10000
    assert (schema, driver) == ("public", AsyncpgFacade)


def test_begin_inserts_and_selects(database: URL) -> None:
    async def body(engine: AsyncEngine) -> tuple[Any, ...]:
        async with engine.begin() as conn:
            await conn.execute(insert(Item), [{"name": "a%b"}, {"name": "$1"}])
            renamed = await conn.execute(
                update(Item).where(Item.name.like("a%")).values(name="a%c")
            )
            rows = await conn.execute(
                select(Item.name, text("'%' || '$1'"), Item.id % 2)
                .where(Item.id > 0)
                .order_by(Item.id)
            )
            return renamed.rowcount, rows.all()

    rowcount, rows = run(database, body)
    assert rowcount == 1
    assert rows == [("a%c", "%$1", 1), ("$1", "%$1", 0)]
    assert query(database, "SELECT name FROM items ORDER BY id") == [("a%c",), ("$1",)]


def test_orm_session_adds_commits_and_refreshes(database: URL) -> None:
    async def body(engine: AsyncEngine) -> tuple[Any, ...]:
        async with AsyncSession(engine) as session:
            item = Item(name="orm")
            session.add(item)
            await session.commit()
            await session.refresh(item)
            return item.id, item.created

    item_id, created = run(database, body)
    assert isinstance(created, datetime.datetime) and created.tzinfo is not None
    assert query(database, "SELECT id, name FROM items") == [(item_id, "orm")]


def test_begin_nested_rolls_back_to_the_savepoint(database: URL) -> None:
    async def body(engine: AsyncEngine) -> list[str]:
        async with AsyncSession(engine) as session:
            session.add(Item(name="kept"))
            await session.flush()
            async with session.begin_nested() as nested:
                session.add(Item(name="undone"))
                await session.flush()
                await nested.rollback()
            await session.commit()
            return list(await session.scalars(select(Item.name)))

    assert run(database, body) == ["kept"]
    assert query(database, "SELECT name FROM items") == [("kept",)]


def test_duplicate_key_raises_integrity_error_then_rollback_and_go_on(database: URL) -> None:
    async def body(engine: AsyncEngine) -> Any:
        async with AsyncSession(engine) as session:
            session.add(Item(name="one"))
            await session.commit()
            session.add(Item(name="one"))
            with pytest.raises(IntegrityError) as caught:
                await session.commit()
            await session.rollback()
            session.add(Item(name="two"))
            await session.commit()
            return caught.value

    error = run(database, body)
    assert error.orig.sqlstate == "23505"
    assert isinstance(error.orig.__cause__, asyncpg.exceptions.UniqueViolationError)
    assert query(database, "SELECT name FROM items ORDER BY id") == [("one",), ("two",)]


def test_errors_are_asyncpgs_for_their_sqlstate(database: URL) -> None:
    async def body(engine: AsyncEngine) -> list[Any]:
        errors = []
        async with engine.connect() as conn:
            for sql, expected in [
                ("SELECT * FROM missing", ProgrammingError),
                ("SELECT 1/0", DBAPIError),
            ]:
                with pytest.raises(expected) as caught:
                    await conn.execute(text(sql))
                errors.append(caught.value)
                await conn.rollback()
        return errors

    missing, zero = run(database, body)
    assert isinstance(missing.orig.__cause__, asyncpg.exceptions.UndefinedTableError)
    assert isinstance(zero.orig.__cause__, asyncpg.exceptions.DivisionByZeroError)
    assert (missing.orig.sqlstate, zero.orig.sqlstate) == ("42P01", "22012")


def test_json_and_jsonb_round_trip(database: URL) -> None:
    doc = {"a": [1, 2.5, None, "x%$1"], "b": {"c": True}}

    async def body(engine: AsyncEngine) -> tuple[Any, ...]:
        async with engine.begin() as conn:
            await conn.execute(insert(Value).values(doc=doc, docb=doc, docs=[doc, [1]]))
            row = (await conn.execute(select(Value.doc, Value.docb, Value.docs))).one()
            path = await conn.scalar(select(Value.docb["b"]["c"].as_boolean()))
            found = await conn.scalar(select(Value.id).where(Value.docb.contains({"b": {}})))
            return tuple(row), path, found

    (plain, binary, listed), path, found = run(database, body)
    assert plain == binary == doc
    assert listed == [doc, [1]]
    assert (path, found) == (True, 1)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("uid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
        ("day", datetime.date(2024, 2, 29)),
        ("stamp", datetime.datetime(2024, 2, 29, 12, 30, 1, 123456)),
        ("stamptz", datetime.datetime(2024, 2, 29, 12, 30, tzinfo=datetime.timezone.utc)),
        ("clock", datetime.time(23, 59, 58)),
        ("span", datetime.timedelta(days=3, seconds=5)),
        ("price", decimal.Decimal("12345678.1234")),
        ("ratio", 0.25),
        ("big", 2**62),
        ("flag", False),
        ("blob", b"\x00\x01%$1"),
        ("words", ["a", "b%", "$1", ""]),
        ("numbers", [1, 2, 3]),
        ("mood", Mood.sad),
        ("moods", [Mood.happy, Mood.sad]),
        ("during", Range(1, 10, bounds="[)")),
    ],
)
def test_values_round_trip(database: URL, column: str, value: Any) -> None:
    attribute = getattr(Value, column)

    async def body(engine: AsyncEngine) -> tuple[Any, Any]:
        async with engine.begin() as conn:
            await conn.execute(insert(Value).values({column: value}))
            back = await conn.scalar(select(attribute))
            found = await conn.scalar(select(func.count()).where(attribute == value))
            return back, found

    back, found = run(database, body)
    assert back == value
    assert type(back) is type(value)
    assert found == 1


def test_stream_reads_rows_in_partitions(database: URL) -> None:
    async def body(engine: AsyncEngine) -> list[list[str]]:
        async with engine.begin() as conn:
            await conn.execute(insert(Item), [{"name": f"n{i:02}"} for i in range(25)])
            result = await conn.stream(select(Item.name).order_by(Item.id))
            return [[row.name for row in part] async for part in result.partitions(10)]

    parts = run(database, body)
    assert [len(part) for part in parts] == [10, 10, 5]
    assert parts[0][0] == "n00" and parts[2][-1] == "n24"


def test_executemany_insert_returning_in_order(database: URL) -> None:
    names = [f"m{i:04}" for i in range(2500)]  # more than one insertmanyvalues batch

    async def body(engine: AsyncEngine) -> list[Any]:
        async with engine.begin() as conn:
            result = await conn.execute(
                insert(Item).returning(Item.id, Item.name, sort_by_parameter_order=True),
                [{"name": name} for name in names],
            )
            return list(result)

    rows = run(database, body)
    assert [row.name for row in rows] == names
    assert len({row.id for row in rows}) == len(names)
    assert query(database, "SELECT count(*) FROM items") == [(len(names),)]


def test_executemany_update(database: URL) -> None:
    async def body(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(Item), [{"name": "x"}, {"name": "y"}])
            await conn.execute(
                update(Item).where(Item.name == bindparam("old")).values(name=bindparam("new")),
                [{"old": "x", "new": "x%"}, {"old": "y", "new": "$1"}],
            )

    run(database, body)
    assert query(database, "SELECT name FROM items ORDER BY id") == [("x%",), ("$1",)]


def test_autocommit_keeps_each_statement_at_once(database: URL) -> None:
    async def body(engine: AsyncEngine) -> list[Any]:
        async with engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.execute(insert(Item).values(name="auto"))
            seen = query(database, "SELECT name FROM items")  # before this one ends
            assert (await facade_of(conn)).virtual.autocommit
            return seen

    assert run(database, body) == [("auto",)]
    assert query(database, "SELECT name FROM items") == [("auto",)]


def test_transaction_characteristics_reach_the_connection(database: URL) -> None:
    async def body(engine: AsyncEngine) -> tuple[Any, ...]:
        async with engine.connect() as conn:
            level = await conn.scalar(text("SHOW transaction_isolation"))
            await conn.rollback()
            readonly = await conn.execution_options(postgresql_readonly=True)
            flag = await readonly.scalar(text("SHOW transaction_read_only"))
            return level, flag

    assert run(database, body, isolation_level="SERIALIZABLE") == ("serializable", "on")


def test_reflection(database: URL) -> None:
    async def body(engine: AsyncEngine) -> dict[str, Any]:
        async with engine.connect() as conn:

            def look(sync: Any) -> dict[str, Any]:
                inspector = inspect(sync)
                return {
                    "tables": sorted(inspector.get_table_names()),
                    "columns": [c["name"] for c in inspector.get_columns("items")],
                    "pk": inspector.get_pk_constraint("items")["constrained_columns"],
                    "fks": inspector.get_foreign_keys("tags")[0]["referred_table"],
                    "indexes": [i["name"] for i in inspector.get_indexes("tags")],
                    "unique": [
                        u["column_names"] for u in inspector.get_unique_constraints("items")
                    ],
                    "enums": [(e["name"], e["labels"]) for e in inspector.get_enums()],
                }

            return await conn.run_sync(look)

    assert run(database, body) == {
        "tables": ["items", "kinds", "tags"],
        "columns": ["id", "name", "created"],
        "pk": ["id"],
        "fks": "items",
        "indexes": ["ix_tags_item_id"],
        "unique": [["name"]],
        "enums": [("mood", ["happy", "sad"])],
    }


def test_pre_ping_replaces_a_dead_connection(database: URL) -> None:
    async def body(engine: AsyncEngine) -> int:
        async with engine.connect() as conn:
            (await facade_of(conn)).virtual.close()  # the server connection is gone
        async with engine.connect() as conn:
            return int(await conn.scalar(text("SELECT 1")) or 0)

    assert run(database, body, pool_pre_ping=True) == 1


def test_the_driver_connection_answers_asyncpgs_api(database: URL) -> None:
    async def body(engine: AsyncEngine) -> dict[str, Any]:
        async with engine.connect() as conn:
            raw = await facade_of(conn)
            await conn.rollback()
            out: dict[str, Any] = {}
            async with raw.transaction():
                await raw.execute("INSERT INTO items (name) VALUES ($1)", "raw")
                try:
                    async with raw.transaction():  # a savepoint
                        await raw.execute("INSERT INTO items (name) VALUES ($1)", "gone")
                        raise RuntimeError
                except RuntimeError:
                    pass
                row = await raw.fetchrow("SELECT id, name FROM items WHERE name = $1", "raw")
                out["row"] = (row["name"], row[0] == row["id"])
                out["count"] = await raw.fetchval("SELECT count(*) FROM items")
                statement = await raw.prepare("SELECT $1::int + 1 AS n")
                out["prepared"] = (
                    [a.name for a in statement.get_attributes()],
                    [p.name for p in statement.get_parameters()],
                )
                out["fetched"] = [tuple(r) for r in await statement.fetch(41)]
                out["cursor"] = [r["name"] async for r in raw.cursor("SELECT name FROM items")]
            with pytest.raises(asyncpg.exceptions.InterfaceError, match="expects 1 argument"):
                await raw.fetch("SELECT $1::int")
            with pytest.raises(asyncpg.exceptions.UndefinedTableError):
                await raw.prepare("SELECT * FROM missing")
            out["status"] = await raw.execute("SELECT 1")
            out["closed"] = raw.is_closed()
            return out

    assert run(database, body) == {
        "row": ("raw", True),
        "count": 1,
        "prepared": (["n"], ["int4"]),
        "fetched": [(42,)],
        "cursor": ["raw"],
        "status": "SELECT 1",
        "closed": False,
    }
    assert query(database, "SELECT name FROM items") == [("raw",)]


def test_a_statement_that_cannot_be_prepared_leaves_the_transaction_as_it_was(
    database: URL,
) -> None:
    """The statement is described in a savepoint of its own: the transaction (on the
    plugin's shared connection, everyone's) is not left aborted by it."""

    async def body(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(Item).values(name="before"))
            with pytest.raises(ProgrammingError):
                await conn.execute(text("SELECT * FROM missing"))
            await conn.execute(insert(Item).values(name="after"))

    run(database, body)
    assert query(database, "SELECT name FROM items ORDER BY id") == [("before",), ("after",)]


def test_timestamptz_comes_back_in_utc_whatever_the_session_zone(database: URL) -> None:
    # asyncpg decodes timestamptz as UTC; psycopg would give the session's time zone.
    async def body(engine: AsyncEngine) -> Any:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("SET TIME ZONE 'Europe/Paris'")
            # (a literal: asyncpg refuses a str argument for a timestamptz parameter)
            return await conn.scalar(text("SELECT '2024-01-01T00:00:00+00:00'::timestamptz"))

    back = run(database, body)
    assert back == datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    assert back.utcoffset() == datetime.timedelta(0)


# -- arguments checked as asyncpg checks them (compared with real asyncpg) ----------------


class Index:
    """An integer by ``__index__`` only."""

    def __index__(self) -> int:
        return 3

    def __repr__(self) -> str:
        return "Index()"


class Integral:
    """A number by ``__int__`` only (asyncpg: an integer, not a float)."""

    def __int__(self) -> int:
        return 3

    def __repr__(self) -> str:
        return "Integral()"


class Real:
    """A number by ``__float__`` only."""

    def __float__(self) -> float:
        return 2.5

    def __repr__(self) -> str:
        return "Real()"


class Text(str):
    pass


def real_connect(url: URL, **kw: Any) -> Any:
    """A real asyncpg connection to ``url``."""
    return asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password or None,
        database=url.database,
        **kw,
    )


def both(database: URL, body: Callable[[Any], Awaitable[T]], **settings: str) -> tuple[T, T]:
    """``body(connection)`` on a real asyncpg connection, then on a facade over a psycopg
    one (autocommit, as asyncpg outside a transaction), each with ``settings``."""

    async def main() -> tuple[T, T]:
        real = await real_connect(database, server_settings=settings)
        try:
            expected = await body(real)
        finally:
            await real.close()
        conn = connect(database, autocommit=True)
        for name, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        facade = AsyncpgFacade(conn)
        try:
            return expected, await body(facade)
        finally:
            await facade.close()

    return asyncio.run(main())


async def outcome(call: Awaitable[Any]) -> tuple[Any, Any]:
    """``("ok", result)``, or the exception's class and message."""
    try:
        return "ok", await call
    except Exception as exc:
        return type(exc), str(exc)


UID = uuid.UUID(int=5)
NAIVE = datetime.datetime(2024, 1, 1, 12, 30)
AWARE = datetime.datetime(2024, 1, 1, 12, 30, tzinfo=datetime.timezone.utc)
TZ_TIME = datetime.time(1, 2, tzinfo=datetime.timezone.utc)
D = decimal.Decimal

#: Per type, values asyncpg takes and values it refuses (each list refuses at least one).
ARGUMENTS: list[tuple[str, list[Any]]] = [
    ("int2", [1, True, D("1.5"), 1.5, Index(), Integral(), "1", b"1", 32768, -32769]),
    ("int4", [2**31 - 1, 2**31, float("inf"), float("nan"), D("NaN"), "x" * 60]),
    ("int8", [2**63 - 1, 2**63, -(2**63), "1"]),
    ("float4", [1.5, 1, True, D("1.5"), Index(), Real(), "1.5", Integral(), 1e40, 2**1100]),
    ("float8", [1.5, Real(), 1e300, "1.5", 2**1100]),
    ("numeric", [D("1.5"), 1, 1.5, True, "1.5", "abc", Real(), Index(), b"1"]),
    ("text", ["a", Text("a"), 5, b"a", True, UID, D(1)]),
    ("varchar", ["a", 5]),
    ("bpchar", ["a", 5.0]),
    ("name", ["a", b"a"]),
    ("bool", [True, False, 1, 0, "true", 1.0]),
    ("date", [datetime.date(2024, 2, 29), NAIVE, "2024-01-01", 5]),
    ("time", [datetime.time(1, 2), TZ_TIME, NAIVE, "01:02", datetime.timedelta(1)]),
    ("timetz", [TZ_TIME, datetime.time(1, 2), "01:02"]),
    ("timestamp", [NAIVE, datetime.date(2024, 1, 1), AWARE, "2024-01-01", 5]),
    ("timestamptz", [AWARE, NAIVE, datetime.date(2024, 1, 1), "2024-01-01", 5]),
    (
        "uuid",
        [
            UID,
            str(UID),
            UID.hex,
            str(UID).upper(),
            Text(UID),
            "nope",
            "g" * 32,
            "0" * 33,
            "-" * 36,
            f"{{{UID}}}",
            UID.bytes,
            UID.int,
        ],
    ),
    ("bytea", [b"a", bytearray(b"a"), memoryview(b"a"), "a", 5, [1]]),
    ("json", ['{"a": 1}', {"a": 1}, 5, b"{}"]),
    ("jsonb", ['{"a": 1}', {"a": 1}, True]),
    (
        "int4[]",
        [
            [1, 2],
            (1, 2),
            range(2),
            {1},
            [[1], [2]],
            [None, 1],
            [[]],
            [True, 1.5],
            ["1"],
            [1, "x"],
            [[1], ["x"]],
            [[1], [2, 3]],
            [1, [2]],
            [[1], 2],
            [(1,), (2,)],
            "ab",
            5,
            b"ab",
            {"a": 1},
            [[[[[[[1]]]]]]],
            [float("nan")],
            [float("inf")],
        ],
    ),
    ("text[]", [["a"], ("a",), [5], [("a",)], [["a"], [5]], [["a"], "b"]]),
    ("numeric[]", [[D(1)], ["x"], [b"1"]]),
    ("float4[]", [[1.5], ["x"], [1e40]]),
    ("bool[]", [[True], [1]]),
    ("date[]", [[datetime.date(2024, 1, 1)], ["x"]]),
    ("timestamp[]", [[NAIVE], [AWARE]]),
    ("uuid[]", [[UID], ["nope"], [5], [Text(UID)]]),
    ("bytea[]", [[b"a"], ["a"]]),
    ("jsonb[]", [["{}"], [{}]]),
]


@pytest.mark.parametrize(("kind", "values"), ARGUMENTS, ids=[kind for kind, _ in ARGUMENTS])
def test_arguments_are_checked_as_asyncpg_checks_them(
    database: URL, kind: str, values: list[Any]
) -> None:
    """Each value, for a parameter of the type, on real asyncpg and on the facade: the
    same result, or the same exception and message."""

    async def body(conn: Any) -> list[tuple[Any, Any]]:
        sql = f"SELECT $1::{kind}::text"  # as text: the values compared as they arrived
        return [await outcome(conn.fetchval(sql, value)) for value in values]

    expected, got = both(database, body, TimeZone="Europe/Paris")
    assert any(result[0] is asyncpg.exceptions.DataError for result in expected)
    assert got == expected


async def first(factory: Any) -> list[tuple[Any, ...]]:
    """The first row of a ``cursor()``, as a tuple."""
    return [tuple(row) for row in await (await factory).fetch(1)]


def test_arguments_are_checked_on_every_path(database: URL) -> None:
    """prepare().fetch(), cursor(), executemany() (each row checked before any runs,
    the row named) and a parameter named twice."""

    async def body(conn: Any) -> list[Any]:
        out = []
        statement = await conn.prepare("SELECT $1::int + 1")
        out.append(await outcome(statement.fetchval("1")))
        out.append(await outcome(statement.fetchval(Index())))
        async with conn.transaction():
            out.append(await outcome(first(conn.cursor("SELECT $1::int", "1"))))
            out.append(await outcome(first(statement.cursor("1"))))
            out.append(await outcome(first(statement.cursor(Index()))))
        insert = "INSERT INTO items (name) VALUES ($2), ($1)"
        out.append(await outcome(conn.executemany(insert, [("a", "b"), ("c", 5)])))
        out.append(await outcome(statement.executemany([(1,), ("1",)])))
        out.append(await conn.fetchval("SELECT count(*) FROM items"))
        out.append(await outcome(conn.fetchval("SELECT $1::int + $1::int + $2", 1, 2)))
        return out

    expected, got = both(database, body)
    assert expected[-2] == 0  # nothing inserted: executemany() checks every row first
    assert got == expected


def test_sqlalchemys_statements_are_refused_as_with_asyncpg(database: URL) -> None:
    """Through SQLAlchemy's asyncpg dialect (and its JSON codecs): the same statements
    fail on a real asyncpg engine and on the facade's, with the same error."""

    async def body(engine: AsyncEngine) -> list[Any]:
        out = []
        async with engine.connect() as conn:
            for statement, params in [
                (text("SELECT 1 WHERE 1 = :x"), {"x": "1"}),
                (insert(Value), {"stamp": AWARE}),
                (insert(Item), {"name": 5}),
                (insert(Value), {"numbers": ["1"]}),
                (select(Value.id).where(Value.big == bindparam("x")), {"x": "2"}),
            ]:
                try:
                    await conn.execute(statement, params)
                    out.append("ok")
                except DBAPIError as exc:
                    cause = exc.orig.__cause__
                    out.append((type(exc), type(cause), str(cause)))
                await conn.rollback()
            raw = await facade_of(conn)
            for sql, value in [("SELECT $1::json", {}), ("SELECT $1::jsonb", 5)]:
                out.append(await outcome(raw.fetchval(sql, value)))
            out.append(await outcome(raw.fetchval("SELECT $1::jsonb", '{"a": 1}')))
        return out

    async def real(engine: AsyncEngine) -> list[Any]:
        engine = create_async_engine(database.set(drivername="postgresql+asyncpg"))
        try:
            return await body(engine)
        finally:
            await engine.dispose()

    expected = asyncio.run(real(create_async_engine(database)))
    assert expected[-1] == ("ok", {"a": 1})
    assert run(database, body) == expected
