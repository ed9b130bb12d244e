"""MariaDB and MySQL: the marker is a database comment (MariaDB 10.5+) or, where the
server has no database comments (MySQL), a marker table inside the test database; a
named lock (``GET_LOCK``) claims a test database for one run; no templates."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError

from .._errors import AlchemyError, unresolved_host
from .._urls import render_url
from ._base import ServerProvisioner
from ._marker import MARKER_TABLE, Marker, claim_key, legacy_marker

#: The connections on a database other than the asking one: counted before a rebuild,
#: ended before a drop.
_OTHER_SESSIONS = "FROM information_schema.processlist WHERE db = :name AND id <> CONNECTION_ID()"
#: The longest database comment MariaDB keeps.
_MAX_COMMENT = 1024


class MySQLProvisioner(ServerProvisioner):
    backends = ("mysql", "mariadb")
    extras: ClassVar[Mapping[str, str]] = {"pymysql": "mysql"}
    max_name_length = 64
    #: Whether the marker is a database comment (MariaDB 10.5+) rather than a table in
    #: the test database; ``None``: decided from the server on first use.
    comment_marker: ClassVar[bool | None] = None
    _uses_comments: bool | None = None

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
        comments = self.uses_comments()
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
            if comments:
                options += f" COMMENT = {self._comment(Marker(None))}"
            self.run_ddl(
                conn, f"CREATE DATABASE {self.quote(name)}{options}", action="create a database"
            )
            if comments:
                return
            self.run_ddl(
                conn,
                f"CREATE TABLE {self._marker_table(name)} "
                "(id INTEGER PRIMARY KEY, marker TEXT NOT NULL)",
                action="mark the test database",
            )
        self.write_marker(name, Marker(None))

    def uses_comments(self) -> bool:
        """Whether this server keeps the marker as a database comment (MariaDB 10.5+),
        unless :attr:`comment_marker` decides."""
        if self.comment_marker is not None:
            return self.comment_marker
        if self._uses_comments is None:
            version = str(self.scalar("SELECT VERSION()") or "")
            found = re.match(r"(\d+)\.(\d+)", version)
            is_new = found is not None and (int(found[1]), int(found[2])) >= (10, 5)
            self._uses_comments = "mariadb" in version.lower() and is_new
        return self._uses_comments

    def claim_query(self, name: str) -> tuple[str, dict[str, Any]]:
        return "SELECT GET_LOCK(:key, 0)", {"key": claim_key(name)}

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

    def product(self, dialect: Dialect) -> str:
        return "MariaDB" if getattr(dialect, "is_mariadb", False) else "MySQL"

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
        if self.uses_comments():
            sql = "SELECT schema_comment FROM information_schema.schemata WHERE schema_name = :name"
            marker = Marker.loads(self.scalar(sql, name=name))
            if marker is not None:
                return marker
        table = self._read_table(name)
        if table is None or not self.uses_comments():
            return Marker.loads(table)
        return legacy_marker(table)  # marked the old way, by an earlier version

    def _read_table(self, name: str) -> str | None:
        sql = (
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = :name AND table_name = :table"
        )
        if self.scalar(sql, name=name, table=MARKER_TABLE) is None:
            return None
        value = self.scalar(f"SELECT marker FROM {self._marker_table(name)} WHERE id = 1")
        return None if value is None else str(value)

    def write_marker(self, name: str, marker: Marker) -> None:
        comments = self.uses_comments()
        with self.admin() as conn:
            if comments:
                self.run_ddl(
                    conn,
                    f"ALTER DATABASE {self.quote(name)} COMMENT = {self._comment(marker)}",
                    action="mark the test database",
                )
                return
            conn.execute(text(f"DELETE FROM {self._marker_table(name)}"))
            conn.execute(
                text(f"INSERT INTO {self._marker_table(name)} (id, marker) VALUES (1, :marker)"),
                {"marker": marker.dumps()},
            )

    def _comment(self, marker: Marker) -> str:
        text_ = marker.dumps()
        if len(text_) > _MAX_COMMENT:
            raise AlchemyError(  # pragma: no cover - a fingerprint has a few short parts
                f"pytest-alchemy: the marker of the test database ({len(text_)} characters) "
                f"is longer than the {_MAX_COMMENT} characters of a MariaDB database "
                "comment.\nFix: report this to pytest-alchemy."
            )
        return self.literal(text_)

    def _marker_table(self, name: str) -> str:
        return f"{self.quote(name)}.{self.quote(MARKER_TABLE)}"
