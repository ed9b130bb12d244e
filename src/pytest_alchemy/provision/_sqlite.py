"""SQLite: a file per test database in the user's cache directory; ownership in the
file's header (``PRAGMA application_id``), the fingerprint in a sidecar file beside it,
a lock file that claims it for one run; and the fix that makes SAVEPOINT work with the
stdlib driver."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from .._errors import AlchemyError
from ._base import Provisioner, plugin_engine
from ._marker import MARKER_TABLE, Marker, legacy_marker

_SIDE_FILES = ("-journal", "-wal", "-shm")
#: ``PRAGMA application_id`` of every SQLite test database the plugin creates: "PyAl"
#: in ASCII. A file with another application id is not the plugin's (unless it carries
#: the marker table of earlier versions).
APPLICATION_ID = 0x5079416C
#: The sidecar file beside a test database that holds its marker (JSON).
MARKER_SUFFIX = ".alchemy.json"
LOCK_SUFFIX = ".lock"


class SQLiteProvisioner(Provisioner):
    backends = ("sqlite",)
    max_name_length = 200

    def __init__(
        self, base_url: URL, *, source: str, sqlite_dir: Path, connect_timeout: int = 5
    ) -> None:
        super().__init__(
            base_url, source=source, sqlite_dir=sqlite_dir, connect_timeout=connect_timeout
        )
        self._locks: dict[str, FileLock] = {}

    def base_name(self) -> str:
        database = self.base_url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return "alchemy"
        return Path(database).stem or "alchemy"

    def test_url(self, name: str) -> URL:
        return self.base_url.set(database=str(self._path(name)))

    def _path(self, name: str) -> Path:
        return self.sqlite_dir / f"{name}.db"

    def _sidecar(self, name: str) -> Path:
        path = self._path(name)
        return path.with_name(path.name + MARKER_SUFFIX)

    def _lock_path(self, name: str) -> Path:
        path = self._path(name)
        return path.with_name(path.name + LOCK_SUFFIX)

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

    def _make_folder(self) -> None:
        try:
            self.sqlite_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AlchemyError(
                f"pytest-alchemy: cannot create the folder for SQLite test databases "
                f"{str(self.sqlite_dir)!r}: {exc.strerror or exc}.\n"
                "Fix: make the user cache directory writable (it follows XDG_CACHE_HOME "
                "on Linux), or set alchemy_url to a server database."
            ) from None

    def create(self, name: str) -> None:
        self._make_folder()
        engine = self._marker_engine(name)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"PRAGMA application_id = {APPLICATION_ID}")
        finally:
            engine.dispose()
        self.write_marker(name, Marker(None))

    def drop(self, name: str) -> None:
        path = self._path(name)
        suffixes = (*_SIDE_FILES, MARKER_SUFFIX)
        for candidate in [path, *(path.with_name(path.name + s) for s in suffixes)]:
            candidate.unlink(missing_ok=True)

    def claim(self, name: str) -> bool:
        if name in self._locks:
            return True
        self._make_folder()
        lock = FileLock(self._lock_path(name), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return False
        self._locks[name] = lock
        return True

    def release(self, name: str) -> None:
        lock = self._locks.pop(name, None)
        if lock is None:
            return
        try:
            # Removed while still held: a run that opens it afterwards makes a new one.
            self._lock_path(name).unlink(missing_ok=True)
        finally:
            lock.release()

    def claims(self) -> list[str]:
        return list(self._locks)

    def close(self) -> None:
        super().close()
        # The project's folder goes with its last file (it holds nothing between runs
        # unless a database is kept).
        with contextlib.suppress(OSError):
            self.sqlite_dir.rmdir()

    def not_ours_fix(self, name: str) -> str:
        return (
            f"delete or move the file {str(self._path(name))!r} yourself if it is "
            f"disposable, or set alchemy_url to a database of your choice ({self.source})."
        )

    def read_marker(self, name: str) -> Marker | None:
        engine = self._marker_engine(name)
        try:
            with engine.connect() as conn:  # a file that is no database is not ours either
                application_id = conn.exec_driver_sql("PRAGMA application_id").scalar()
                if application_id != APPLICATION_ID:
                    return legacy_marker(self._read_table(conn))
        except DBAPIError:
            return None
        finally:
            engine.dispose()
        try:
            text_ = self._sidecar(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return Marker(None)  # ours, but what it holds is unknown: rebuilt
        return Marker.loads(text_) or Marker(None)

    def _read_table(self, conn: Connection) -> str | None:
        has_table = conn.execute(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :t"),
            {"t": MARKER_TABLE},
        ).scalar()
        if has_table is None:
            return None
        value = conn.execute(
            text(f"SELECT marker FROM {self.quote(MARKER_TABLE)} WHERE id = 1")
        ).scalar()
        return None if value is None else str(value)

    def write_marker(self, name: str, marker: Marker) -> None:
        """Write the sidecar atomically (a temporary file renamed over it)."""
        sidecar = self._sidecar(name)
        handle, temporary = tempfile.mkstemp(dir=sidecar.parent, prefix=sidecar.name + ".")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(marker.dumps())
            os.replace(temporary, sidecar)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

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
