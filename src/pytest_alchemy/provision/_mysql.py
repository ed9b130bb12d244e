"""MariaDB and MySQL: a marker table inside the test database; no templates."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from .._errors import AlchemyError, unresolved_host
from .._urls import render_url
from ._base import MARKER_TABLE, Marker, ServerProvisioner

#: The connections on a database other than the asking one: counted before a rebuild,
#: ended before a drop.
_OTHER_SESSIONS = "FROM information_schema.processlist WHERE db = :name AND id <> CONNECTION_ID()"


class MySQLProvisioner(ServerProvisioner):
    backends = ("mysql", "mariadb")
    extras: ClassVar[Mapping[str, str]] = {"pymysql": "mysql"}
    max_name_length = 64

    def admin_urls(self) -> list[Any]:
        # Database-level statements need no current database.
        return [self.base_url._replace(database=None)]  # URL.set() ignores None

    def connect_args(self) -> dict[str, Any]:
        return {"connect_timeout": self.connect_timeout}

    def check_server_answers(self) -> None:
        # The server speaks first; PyMySQL's connect timeout ends before that greeting,
        # so a server that accepts but never answers would hang the run.
        url = self.base_url
        if url.query.get("unix_socket"):
            return
        address = (url.host or "localhost", url.port or 3306)
        try:
            with socket.create_connection(address, timeout=self.connect_timeout) as sock:
                sock.settimeout(self.connect_timeout)
                sock.recv(1)
        except TimeoutError:
            where = f"{address[0]}:{address[1]}"
            raise AlchemyError(
                f"pytest-alchemy: the database server at {where} does not answer "
                f"({self.source} = {render_url(url)}): no greeting within "
                f"{self.connect_timeout} seconds.\n"
                f"Fix: start the server, or point {self.source} at one that is running."
            ) from None
        except socket.gaierror as exc:
            raise unresolved_host(url, self.source, str(exc)) from None
        except OSError:
            return  # refused, unreachable...: the driver's own error says it best

    def exists(self, name: str) -> bool:
        sql = "SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"
        return self.scalar(sql, name=name) is not None

    def create(self, name: str) -> None:
        with self.admin() as conn:
            charset = conn.execute(
                text(
                    "SELECT default_character_set_name, default_collation_name "
                    "FROM information_schema.schemata WHERE schema_name = :name"
                ),
                {"name": self.base_url.database or ""},
            ).first()
            options = ""
            if charset is not None and all(re.fullmatch(r"\w+", str(v)) for v in charset):
                # Same character set and collation as the application's own database.
                options = f" CHARACTER SET {charset[0]} COLLATE {charset[1]}"
            self.run_ddl(
                conn, f"CREATE DATABASE {self.quote(name)}{options}", action="create a database"
            )
            self.run_ddl(
                conn,
                f"CREATE TABLE {self._marker_table(name)} "
                "(id INTEGER PRIMARY KEY, marker TEXT NOT NULL)",
                action="mark the test database",
            )
        self.write_marker(name, Marker(None))

    def drop(self, name: str) -> None:
        with self.admin() as conn:
            # A leftover connection holding a metadata lock would make DROP DATABASE wait
            # for lock_wait_timeout (a year by default): end those on this database only.
            leftover = conn.execute(text(f"SELECT id {_OTHER_SESSIONS}"), {"name": name}).scalars()
            for thread_id in leftover:
                with contextlib.suppress(DBAPIError):  # it may have ended meanwhile
                    conn.exec_driver_sql(f"KILL {int(thread_id)}")
            self.run_ddl(
                conn, f"DROP DATABASE IF EXISTS {self.quote(name)}", action="drop a database"
            )

    def server_version(self) -> str:
        with self.admin() as conn:
            dialect: Any = conn.dialect
            version = dialect.server_version_info or ()
            product = "MariaDB" if getattr(dialect, "is_mariadb", False) else "MySQL"
        return f"{product} " + ".".join(str(part) for part in version)

    def create_schemas(self, conn: Connection, schemas: Sequence[str]) -> None:
        if schemas:
            raise AlchemyError(
                f"pytest-alchemy: on {self.dialect.name}, a schema is another database, "
                "outside the test database: the tables of the schemas "
                f"{', '.join(map(repr, schemas))} would be created in (or next to) a "
                "database the tests do not own.\nFix: leave schema= off those tables, "
                "or map it away in the application with the execution option "
                "schema_translate_map={'<schema>': None}; or build on PostgreSQL."
            )

    def sessions(self, name: str) -> int:
        return int(self.scalar(f"SELECT count(*) {_OTHER_SESSIONS}", name=name) or 0)

    def read_marker(self, name: str) -> Marker | None:
        sql = (
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = :name AND table_name = :table"
        )
        if self.scalar(sql, name=name, table=MARKER_TABLE) is None:
            return None
        return Marker.loads(
            self.scalar(f"SELECT marker FROM {self._marker_table(name)} WHERE id = 1")
        )

    def write_marker(self, name: str, marker: Marker) -> None:
        with self.admin() as conn:
            conn.execute(text(f"DELETE FROM {self._marker_table(name)}"))
            conn.execute(
                text(f"INSERT INTO {self._marker_table(name)} (id, marker) VALUES (1, :marker)"),
                {"marker": marker.dumps()},
            )

    def _marker_table(self, name: str) -> str:
        return f"{self.quote(name)}.{self.quote(MARKER_TABLE)}"
