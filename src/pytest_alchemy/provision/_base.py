"""What every per-dialect provisioner does."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import String, create_engine, literal, text
from sqlalchemy.engine import URL, Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from .._errors import AlchemyError, connect_error, first_line
from .._urls import render_url
from ._marker import Marker


def _nothing() -> None:
    return None


#: Set on the dialect of every engine the plugin makes for itself (building, marking,
#: administration): their connections to the test database are the plugin's own.
OWN_DIALECT = "_pytest_alchemy_own"


def plugin_engine(url: URL, **options: Any) -> Engine:
    """``create_engine`` for the plugin's own work, marked as such (see
    :func:`is_plugin_dialect`)."""
    engine = create_engine(url, **options)
    setattr(engine.dialect, OWN_DIALECT, True)
    return engine


def is_plugin_dialect(dialect: Dialect) -> bool:
    """Whether a dialect belongs to an engine :func:`plugin_engine` made."""
    return bool(getattr(dialect, OWN_DIALECT, False))


class Provisioner(abc.ABC):
    """Creates, marks, inspects and drops test databases on one kind of server.

    One instance serves one base URL (the server and the base database named in the
    settings). Identifiers are always quoted by the dialect's own preparer.
    """

    #: Backend names (``URL.get_backend_name()``) this provisioner serves.
    backends: ClassVar[tuple[str, ...]]
    #: Driver name to the pip extra of pytest-alchemy that installs it.
    extras: ClassVar[Mapping[str, str]] = {}
    #: Longest database name the server accepts.
    max_name_length: ClassVar[int] = 63

    def __init__(
        self, base_url: URL, *, source: str, sqlite_dir: Path, connect_timeout: int = 5
    ) -> None:
        self.base_url = base_url
        self.source = source
        self.sqlite_dir = sqlite_dir
        self.connect_timeout = connect_timeout
        self.dialect: Dialect = base_url.get_dialect()()

    # -- naming -------------------------------------------------------------------------

    def base_name(self) -> str:
        return self.base_url.database or "alchemy"

    def test_name(self, suffix: str = "") -> str:
        from .._errors import SettingError

        name = f"test_{self.base_name()}{suffix}"
        if len(name.encode()) > self.max_name_length:  # servers count bytes
            raise SettingError(
                f"pytest-alchemy: the test database name {name!r} is longer than the "
                f"{self.max_name_length} bytes {self.dialect.name} allows.\n"
                f"Fix: use a shorter base database name in {self.source}."
            )
        return name

    def test_url(self, name: str) -> URL:
        return self.base_url.set(database=name)

    def quote(self, name: str) -> str:
        return self.dialect.identifier_preparer.quote(name)

    def literal(self, value: str) -> str:
        """``value`` as an SQL string literal, rendered by the dialect."""
        compiled = literal(value, String()).compile(
            dialect=self.dialect, compile_kwargs={"literal_binds": True}
        )
        return str(compiled)

    # -- engines ------------------------------------------------------------------------

    def connect_args(self) -> dict[str, Any]:
        """Driver arguments that bound how long a connection attempt may take."""
        return {}

    def shared_connect_args(self) -> dict[str, Any]:
        """Driver arguments the connection shared by a test's engines needs (it may be
        used from several threads, one at a time)."""
        return {}

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments for ``create_engine`` on a test database."""
        wanted = {**self.connect_args(), **self.shared_connect_args()}
        args = {k: v for k, v in wanted.items() if k not in self.base_url.query}
        return {"connect_args": args} if args else {}

    def configure_engine(self, engine: Engine) -> Callable[[], None]:
        """Make an engine on the test database behave correctly under savepoint isolation;
        returns what undoes that."""
        return _nothing

    # -- the server ---------------------------------------------------------------------

    @abc.abstractmethod
    def exists(self, name: str) -> bool:
        """Whether a database of that name exists."""

    @abc.abstractmethod
    def create(self, name: str) -> None:
        """Create the database and mark it as ours, with no fingerprint yet."""

    @abc.abstractmethod
    def drop(self, name: str) -> None:
        """Drop the database. Callers check the marker first."""

    def sessions(self, name: str) -> int:
        """How many other connections are open on the database (0 where unknown)."""
        return 0

    # -- claims: one run per test database at a time ------------------------------------

    @abc.abstractmethod
    def claim(self, name: str) -> bool:
        """Take this run's claim on the test database name ``name`` (whether or not the
        database exists), held until :meth:`release` or :meth:`close`, and by the
        operating system or server no longer than the process lives. ``True`` when taken
        (or already held by this provisioner), ``False`` when another run holds it.
        Raises :class:`AlchemyError` when the claim cannot be asked for at all."""

    def release(self, name: str) -> None:  # noqa: B027 - claims may need no release
        """Give up the claim on ``name`` (nothing when not held)."""

    def claims(self) -> list[str]:
        """The names this provisioner holds claims on."""
        return []

    @abc.abstractmethod
    def read_marker(self, name: str) -> Marker | None:
        """The marker on an existing database, or ``None`` when it carries none of ours."""

    @abc.abstractmethod
    def write_marker(self, name: str, marker: Marker) -> None:
        """Record the marker on a database that the plugin created."""

    def configure_database(self, name: str, lock_timeout: float) -> None:  # noqa: B027
        """Per-database settings every run applies (after creating or reusing it):
        ``lock_timeout`` (seconds) bounds lock waits of any connection to it, where the
        server has such a setting."""

    # -- what the schema build relies on (see schema/ and _database) -------------------

    def server_version(self) -> str:
        """The server's product and version, a part of every fingerprint (a reused
        database built by another server version is rebuilt)."""
        return self.dialect.name

    def server_dialect(self) -> Dialect:
        """The dialect as a connection to the server initialises it (server version,
        MariaDB or MySQL, sequences...): what ``create_all`` on the test database will
        see, so what its DDL is fingerprinted with."""
        return self.dialect

    def database_settings(self) -> Mapping[str, str]:
        """The base database's own settings that a new database does not inherit and the
        test database must carry (PostgreSQL ``ALTER DATABASE ... SET``), as statements
        or values keyed by name; part of the fingerprint."""
        return {}

    def apply_database_settings(self, name: str) -> None:  # noqa: B027 - optional hook
        """Give the test database ``name`` the base database's settings
        (:meth:`database_settings`), before its schema is built."""

    def create_schemas(self, conn: Connection, schemas: Sequence[str]) -> None:
        """Create the named schemas (``Table(schema=...)``) in the test database before
        ``create_all``; raises :class:`AlchemyError` where the backend has no schemas
        inside a database."""
        if schemas:
            raise AlchemyError(
                f"pytest-alchemy: {self.dialect.name} has no schemas inside a database, "
                f"so the schemas {', '.join(map(repr, schemas))} the metadata names cannot "
                "be created in the test database.\nFix: leave schema= off those tables "
                "(or map it away with the execution option schema_translate_map in the "
                "application), or build on a server that has schemas, such as PostgreSQL."
            )

    def describe_connect_args(self, cargs: Sequence[Any], cparams: Mapping[str, Any]) -> str:
        """Which database a driver connect call is aimed at, for messages."""
        host = cparams.get("host", "localhost")
        port = cparams.get("port")
        database = cparams.get("dbname") or cparams.get("database") or cparams.get("db")
        where = f"{host}:{port}" if port else str(host)
        return f"database {database!r} on {where}"

    def not_ours_fix(self, name: str) -> str:
        """The fix line's advice for a database of the test name that is not ours."""
        return (
            "drop or rename it yourself if it is disposable, or choose another base "
            f"database in {self.source}."
        )

    def close(self) -> None:
        """Release what the provisioner holds open, its claims included."""
        for name in self.claims():
            self.release(name)


class ServerProvisioner(Provisioner):
    """A provisioner for a database server reached over an administrative connection."""

    #: The server's product, as :meth:`server_version` names it.
    product_name: ClassVar[str] = "server"

    def __init__(
        self, base_url: URL, *, source: str, sqlite_dir: Path, connect_timeout: int = 5
    ) -> None:
        super().__init__(
            base_url, source=source, sqlite_dir=sqlite_dir, connect_timeout=connect_timeout
        )
        self._admin_engine: Engine | None = None
        self._claims: dict[str, tuple[Engine, Connection]] = {}

    def admin_urls(self) -> list[URL]:
        """Where to connect for CREATE/DROP DATABASE, tried in order."""
        return [self.base_url]

    def check_server_answers(self) -> None:
        """Fail fast when the server accepts connections but never answers, for drivers
        whose connect timeout does not cover the handshake."""

    def is_missing_database(self, exc: DBAPIError) -> bool:
        """Whether a connect error says that the database itself does not exist."""
        return False

    @contextmanager
    def admin(self) -> Iterator[Connection]:
        """An AUTOCOMMIT connection to the server, with connect errors explained."""
        if self._admin_engine is not None:
            with self._admin_engine.connect() as conn:
                yield conn
            return
        # A pooled engine: the few administrative statements of a run share one
        # connection; close() disposes of it.
        engine, conn = self._connect_first(self.admin_urls(), pool_size=1)
        self._admin_engine = engine
        with conn:
            yield conn

    def _connect_first(
        self, candidates: Sequence[URL], **options: Any
    ) -> tuple[Engine, Connection]:
        """An AUTOCOMMIT engine and connection on the first of ``candidates`` whose
        database exists (connect errors explained)."""
        self.check_server_answers()
        for index, url in enumerate(candidates):
            engine = plugin_engine(
                url, isolation_level="AUTOCOMMIT", **options, **self.engine_options()
            )
            try:
                return engine, engine.connect()
            except DBAPIError as exc:
                engine.dispose()
                if not (self.is_missing_database(exc) and index + 1 < len(candidates)):
                    raise connect_error(exc, url, self.source) from None
        raise AssertionError("unreachable: the last candidate returns or raises")

    def server_dialect(self) -> Dialect:
        with self.admin() as conn:
            return conn.dialect  # initialised by the first connection

    def product(self, dialect: Dialect) -> str:
        """The server's product name, for :meth:`server_version`."""
        return self.product_name

    def server_version(self) -> str:
        dialect = self.server_dialect()
        version = ".".join(str(part) for part in dialect.server_version_info or ())
        return f"{self.product(dialect)} {version}"

    def scalar(self, sql: str, **params: Any) -> Any:
        """The first value of a query on the administrative connection."""
        with self.admin() as conn:
            return conn.execute(text(sql), params).scalar()

    # -- claims: a lock of the server's, held by a connection of its own for the run ----

    def claim_urls(self) -> list[URL]:
        """Where the connection holding a claim goes, tried in order: every run on the
        server must reach the same place for locks that are per database."""
        return self.admin_urls()

    @abc.abstractmethod
    def claim_query(self, name: str) -> tuple[str, dict[str, Any]]:
        """A query (and its parameters) that takes the lock for ``name`` without waiting
        and returns a true value when it did."""

    def claim(self, name: str) -> bool:
        if name in self._claims:
            return True
        engine, conn = self._connect_first(self.claim_urls(), poolclass=NullPool)
        sql, params = self.claim_query(name)
        taken = False
        try:
            taken = bool(conn.execute(text(sql), params).scalar())
        finally:
            if not taken:  # not taken, or the query failed: this connection holds nothing
                conn.close()
                engine.dispose()
        if not taken:
            return False
        self._claims[name] = (engine, conn)
        return True

    def release(self, name: str) -> None:
        held = self._claims.pop(name, None)
        if held is None:
            return
        engine, conn = held
        try:
            conn.close()  # the server's lock ends with the session that holds it
        finally:
            engine.dispose()

    def claims(self) -> list[str]:
        return list(self._claims)

    def close(self) -> None:
        super().close()
        if self._admin_engine is not None:
            self._admin_engine.dispose()
            self._admin_engine = None

    def run_ddl(self, conn: Connection, sql: str, *, action: str) -> None:
        """Run a database-level statement, explaining a refusal from the server."""
        try:
            conn.exec_driver_sql(sql)
        except DBAPIError as exc:
            user = self.base_url.username or "(default user)"
            raise AlchemyError(
                f"pytest-alchemy: the server refused to {action} as user {user!r} "
                f"({self.source} = {render_url(self.base_url)}): {first_line(exc)}\n"
                "Fix: give that user the privilege to create and drop databases, "
                f"or use a URL in {self.source} whose user has it."
            ) from None
