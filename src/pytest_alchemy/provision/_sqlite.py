"""SQLite: a file per test database in pytest's temporary root, a marker table inside it,
and the fix that makes SAVEPOINT work with the stdlib driver."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from .._errors import AlchemyError
from ._base import MARKER_TABLE, Marker, Provisioner, plugin_engine

_SIDE_FILES = ("-journal", "-wal", "-shm")


class SQLiteProvisioner(Provisioner):
    backends = ("sqlite",)
    max_name_length = 200

    def base_name(self) -> str:
        database = self.base_url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return "alchemy"
        return Path(database).stem or "alchemy"

    def test_url(self, name: str) -> URL:
        return self.base_url.set(database=str(self._path(name)))

    def _path(self, name: str) -> Path:
        return self.sqlite_dir / f"{name}.db"

    def shared_connect_args(self) -> dict[str, Any]:
        # Threads of the test (a WSGI server, a thread pool) take turns on it.
        return {"check_same_thread": False}

    def configure_engine(self, engine: Engine) -> Callable[[], None]:
        if engine.dialect.driver != "pysqlite":
            return super().configure_engine(engine)
        # The stdlib driver's legacy transaction handling emits no BEGIN before SAVEPOINT
        # or DDL, so a savepoint would commit for real. Take over transaction control.
        event.listen(engine, "connect", _on_connect)
        event.listen(engine, "begin", _on_begin)

        def undo() -> None:
            event.remove(engine, "begin", _on_begin)
            event.remove(engine, "connect", _on_connect)

        return undo

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def create(self, name: str) -> None:
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AlchemyError(
                f"pytest-alchemy: cannot create the folder for SQLite test databases "
                f"{str(path.parent)!r}: {exc.strerror or exc}.\n"
                "Fix: make pytest's temporary root writable (it follows TMPDIR and "
                "PYTEST_DEBUG_TEMPROOT), or set alchemy_url to a server database."
            ) from None
        with self._marker_engine(name).begin() as conn:
            conn.exec_driver_sql(
                f"CREATE TABLE {self.quote(MARKER_TABLE)} "
                "(id INTEGER PRIMARY KEY, marker TEXT NOT NULL)"
            )
        self.write_marker(name, Marker(None))

    def drop(self, name: str) -> None:
        path = self._path(name)
        for candidate in [path, *(path.with_name(path.name + s) for s in _SIDE_FILES)]:
            candidate.unlink(missing_ok=True)

    def read_marker(self, name: str) -> Marker | None:
        engine = self._marker_engine(name)
        try:
            with engine.connect() as conn:  # a file that is no database is not ours either
                has_table = conn.execute(
                    text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :t"),
                    {"t": MARKER_TABLE},
                ).scalar()
                if has_table is None:
                    return None
                value = conn.execute(
                    text(f"SELECT marker FROM {self.quote(MARKER_TABLE)} WHERE id = 1")
                ).scalar()
        except DBAPIError:
            return None
        finally:
            engine.dispose()
        return Marker.loads(value)

    def write_marker(self, name: str, marker: Marker) -> None:
        engine = self._marker_engine(name)
        try:
            with engine.begin() as conn:
                conn.execute(text(f"DELETE FROM {self.quote(MARKER_TABLE)}"))
                conn.execute(
                    text(f"INSERT INTO {self.quote(MARKER_TABLE)} (id, marker) VALUES (1, :m)"),
                    {"m": marker.dumps()},
                )
        finally:
            engine.dispose()

    def _marker_engine(self, name: str) -> Engine:
        return plugin_engine(self.test_url(name), poolclass=NullPool)

    def server_version(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"

    def server_dialect(self) -> Dialect:
        engine = plugin_engine(URL.create(self.base_url.drivername), poolclass=NullPool)
        try:
            with engine.connect() as conn:  # in memory: initialises the dialect
                return conn.dialect
        finally:
            engine.dispose()

    def create_schemas(self, conn: Connection, schemas: Sequence[str]) -> None:
        schemas = [s for s in schemas if s not in ("main", "temp")]  # always there
        if schemas:
            raise AlchemyError(
                "pytest-alchemy: on SQLite, a schema is another database file attached "
                "to the connection (ATTACH DATABASE), outside the test database: the "
                f"schemas {', '.join(map(repr, schemas))} cannot be created in it.\n"
                "Fix: leave schema= off those tables, or map it away in the application "
                "with the execution option schema_translate_map={'<schema>': None}; or "
                "build on PostgreSQL."
            )

    def describe_connect_args(self, cargs: Sequence[Any], cparams: Mapping[str, Any]) -> str:
        target = cargs[0] if cargs else cparams.get("database", "?")
        return f"SQLite database {str(target)!r}"


def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # Behave like the server databases: foreign keys are enforced.
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_begin(conn: Connection) -> None:
    # An application that applies the same fix itself has begun already.
    if not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN")
