"""PostgreSQL: a COMMENT on the database is the marker; leftover sessions are ended
before a drop."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateSchema

from .._errors import AlchemyError, first_line
from ._base import Marker, ServerProvisioner

#: The sessions on a database other than the asking one: counted before a rebuild, ended
#: before a drop.
_OTHER_SESSIONS = "FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"


class PostgresProvisioner(ServerProvisioner):
    backends = ("postgresql",)
    extras: ClassVar[Mapping[str, str]] = {"psycopg": "postgresql"}
    max_name_length = 63

    def admin_urls(self) -> list[URL]:
        # The base database may not exist yet (a fresh CI server): fall back to the
        # maintenance databases every server has.
        names = [self.base_url.database, "postgres", "template1"]
        seen: list[URL] = []
        for name in names:
            if name and all(url.database != name for url in seen):
                seen.append(self.base_url.set(database=name))
        return seen

    def is_missing_database(self, exc: DBAPIError) -> bool:
        return "does not exist" in str(exc.orig) and "database" in str(exc.orig)

    def connect_args(self) -> dict[str, Any]:
        return {"connect_timeout": self.connect_timeout}

    def exists(self, name: str) -> bool:
        sql = "SELECT 1 FROM pg_database WHERE datname = :name"
        return self.scalar(sql, name=name) is not None

    def create(self, name: str) -> None:
        with self.admin() as conn:
            self.run_ddl(conn, f"CREATE DATABASE {self.quote(name)}", action="create a database")
        self.write_marker(name, Marker(None))

    def drop(self, name: str) -> None:
        with self.admin() as conn:
            try:
                conn.execute(
                    text(f"SELECT pg_terminate_backend(pid) {_OTHER_SESSIONS}"), {"name": name}
                )
            except DBAPIError as exc:
                raise AlchemyError(
                    f"pytest-alchemy: cannot end the sessions left on the test database "
                    f"{name!r} before dropping it: {first_line(exc)}\nFix: close them, or "
                    "run as a user that may end them (pg_signal_backend)."
                ) from None
            self.run_ddl(
                conn, f"DROP DATABASE IF EXISTS {self.quote(name)}", action="drop a database"
            )

    def configure_database(self, name: str, lock_timeout: float) -> None:
        # PostgreSQL waits for a lock forever by default; this bounds the wait of every
        # new connection to the test database, other processes' included.
        with self.admin() as conn:
            self.run_ddl(
                conn,
                f"ALTER DATABASE {self.quote(name)} SET lock_timeout = {int(lock_timeout * 1000)}",
                action="set the test database's lock_timeout",
            )

    def server_version(self) -> str:
        with self.admin() as conn:
            version = conn.dialect.server_version_info or ()
        return "PostgreSQL " + ".".join(str(part) for part in version)

    def create_schemas(self, conn: Connection, schemas: Sequence[str]) -> None:
        for schema in schemas:
            conn.execute(CreateSchema(schema, if_not_exists=True))

    def sessions(self, name: str) -> int:
        return int(self.scalar(f"SELECT count(*) {_OTHER_SESSIONS}", name=name) or 0)

    def read_marker(self, name: str) -> Marker | None:
        sql = "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :name"
        return Marker.loads(self.scalar(sql, name=name))

    def write_marker(self, name: str, marker: Marker) -> None:
        with self.admin() as conn:
            self.run_ddl(
                conn,
                f"COMMENT ON DATABASE {self.quote(name)} IS {self.literal(marker.dumps())}",
                action="mark the test database",
            )
