"""PostgreSQL: a COMMENT on the database is the marker; leftover sessions are ended
before a drop; a session-level advisory lock claims a test database for one run; the
base database's ``ALTER DATABASE ... SET`` settings are carried over."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateSchema

from .._errors import AlchemyError, first_line
from ._base import ServerProvisioner
from ._marker import Marker, claim_key

#: The sessions on a database other than the asking one: counted before a rebuild, ended
#: before a drop.
_OTHER_SESSIONS = "FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"

#: The base database's own settings (``ALTER DATABASE base SET ...``, setrole = 0) and its
#: per-role ones (``ALTER ROLE r IN DATABASE base SET ...``): name = value strings.
_SETTINGS = (
    "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s "
    "JOIN pg_database d ON d.oid = s.setdatabase "
    "LEFT JOIN pg_roles r ON r.oid = s.setrole AND s.setrole <> 0 "
    "WHERE d.datname = :name"
)
#: What a configuration parameter's name may look like (``search_path``, ``app.tenant``).
_PARAMETER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")
#: The database the advisory locks that claim test databases are taken in (advisory
#: locks are per database, so every run must take them in the same one).
_CLAIM_DATABASE = "postgres"


class PostgresProvisioner(ServerProvisioner):
    backends = ("postgresql",)
    extras: ClassVar[Mapping[str, str]] = {"psycopg": "postgresql"}
    max_name_length = 63
    product_name = "PostgreSQL"

    def admin_urls(self) -> list[URL]:
        # The base database may not exist yet (a fresh CI server): fall back to the
        # maintenance databases every server has.
        names = [self.base_url.database, "postgres", "template1"]
        seen: list[URL] = []
        for name in names:
            if name and all(url.database != name for url in seen):
                seen.append(self.base_url.set(database=name))
        return seen

    def claim_urls(self) -> list[URL]:
        # Not template1: a session there makes every CREATE DATABASE fail.
        names = [_CLAIM_DATABASE, self.base_url.database]
        return [self.base_url.set(database=n) for n in dict.fromkeys(names) if n]

    def claim_query(self, name: str) -> tuple[str, dict[str, Any]]:
        digest = hashlib.sha256(claim_key(name).encode()).digest()[:8]
        key = int.from_bytes(digest, "big", signed=True)
        return "SELECT pg_try_advisory_lock(:key)", {"key": key}

    def database_settings(self) -> Mapping[str, str]:
        """The base database's settings, ``{parameter: value}`` for its own
        (``ALTER DATABASE base SET parameter = value``) and ``{"parameter for role r":
        value}`` for per-role ones (``ALTER ROLE r IN DATABASE base SET ...``), read
        from ``pg_db_role_setting``; empty when the base database does not exist."""
        return {_key(parameter, role): value for role, parameter, value in self._settings()}

    def apply_database_settings(self, name: str) -> None:
        """Give the test database ``name`` the base database's settings: each value is
        set in a transaction of the administrative connection's own (``set_config``,
        parsed as the server parses a stored setting) and stored with ``ALTER DATABASE
        name SET parameter FROM CURRENT`` (``ALTER ROLE ... IN DATABASE`` for a role's)."""
        settings = self._settings()
        if not settings:
            return
        with self.admin() as admin:
            # In a transaction of its own, so that each set_config ends with it.
            conn = admin.execution_options(isolation_level="READ COMMITTED")
            try:
                with conn.begin():
                    for role, parameter, value in settings:
                        conn.execute(
                            text("SELECT set_config(:p, :v, true)"), {"p": parameter, "v": value}
                        )
                        target = f"DATABASE {self.quote(name)}"
                        if role is not None:
                            target = f"ROLE {self.quote(role)} IN {target}"
                        conn.exec_driver_sql(f"ALTER {target} SET {parameter} FROM CURRENT")
            except DBAPIError as exc:
                shown = ", ".join(_key(p, r) for r, p, _ in settings)
                raise AlchemyError(
                    f"pytest-alchemy: cannot give the test database {name!r} the settings "
                    f"of the base database {self.base_url.database!r} ({shown}): "
                    f"{first_line(exc)}\nFix: correct those settings (ALTER DATABASE ... "
                    "SET), or run as a user that may set them."
                ) from None

    def _settings(self) -> list[tuple[str | None, str, str]]:
        """(role or None, parameter, value) of the base database's stored settings."""
        base = self.base_url.database
        if not base:
            return []
        with self.admin() as conn:
            rows = conn.execute(text(_SETTINGS), {"name": base}).all()
        settings = []
        for role, config in sorted(rows, key=lambda row: row[0] or ""):
            for entry in config or []:
                parameter, _, value = str(entry).partition("=")
                if not _PARAMETER.fullmatch(parameter):
                    raise AlchemyError(
                        f"pytest-alchemy: the base database {base!r} has a setting "
                        f"{parameter!r} that pytest-alchemy cannot carry over.\nFix: "
                        f"remove it (ALTER DATABASE {base} RESET ...), or report it."
                    )
                settings.append((role, parameter, value))
        return settings

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


def _key(parameter: str, role: str | None) -> str:
    return parameter if role is None else f"{parameter} for role {role}"
