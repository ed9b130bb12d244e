"""The pytest layer: options, ini settings, the header, and the fixtures.

Each setting is also a session fixture of the same name that a conftest.py may override
(the way pytest-django's small fixtures are override points); the fixtures that do the
work are built from those.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from ._database import TestDatabase
from ._errors import AlchemyError, SettingError
from ._isolation import IsolatedTransaction
from ._routing import EngineRedirect
from ._schema import AlembicSchema, MetadataSchema, NoSchema, SchemaSource
from ._settings import (
    Settings,
    as_engine,
    as_metadata,
    as_session_factory,
    import_object,
    load_engine,
    resolve_settings,
)
from ._urls import parse_url, render_url
from .provision import check_driver

T = TypeVar("T")


@dataclass
class _RunState:
    settings: Settings
    suffix: str
    #: Environment variables set for the run, with the values to restore.
    saved_environ: dict[str, str | None] = field(default_factory=dict)


_STATE = pytest.StashKey[_RunState]()
#: The run's test database, for the terminal summary.
_DATABASE = pytest.StashKey[TestDatabase]()


# -- options and settings ----------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("alchemy", "pytest-alchemy: SQLAlchemy test databases")
    group.addoption(
        "--alchemy-url",
        dest="alchemy_url",
        default=None,
        metavar="URL",
        help="Server and base database for the test database, e.g. "
        "postgresql+psycopg://user@host/app (beats $PYTEST_ALCHEMY_URL and alchemy_url). "
        "Default: a SQLite file in pytest's temporary directory.",
    )
    group.addoption(
        "--alchemy-reuse-db",
        action="store_true",
        dest="alchemy_reuse_db",
        default=False,
        help="Keep the test database after the run and reuse it while its schema "
        "fingerprint is unchanged.",
    )
    group.addoption(
        "--alchemy-create-db",
        action="store_true",
        dest="alchemy_create_db",
        default=False,
        help="Always rebuild the test database, even with --alchemy-reuse-db.",
    )
    group.addoption(
        "--alchemy-no-migrations",
        action="store_true",
        dest="alchemy_no_migrations",
        default=False,
        help="Build the schema from alchemy_metadata even when alchemy_alembic_ini is set.",
    )
    parser.addini("alchemy_url", "Server and base database for the test database.")
    parser.addini(
        "alchemy_metadata",
        "module:attribute of the MetaData (or declarative base, SQLModel) to create_all.",
    )
    parser.addini(
        "alchemy_alembic_ini",
        "Path of alembic.ini: the schema is built with 'alembic upgrade head'.",
    )
    parser.addini(
        "alchemy_engines",
        "The application's Engine objects (module:attribute, one a line), routed into "
        "the test database and each test's transaction.",
        type="linelist",
    )
    parser.addini(
        "alchemy_sessionmakers",
        "The application's sessionmaker / scoped_session objects (module:attribute, one "
        "a line), bound to each test's transaction.",
        type="linelist",
    )
    parser.addini(
        "alchemy_url_env",
        "Name of an environment variable set to the test database URL before test "
        "modules are imported.",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    # Before conftest.py files are imported: apps read their URL at import time.
    _configure(early_config, early_config.known_args_namespace)


def pytest_configure(config: pytest.Config) -> None:
    if _STATE not in config.stash:
        _configure(config, config.option)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    for name, value in state.saved_environ.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    state.saved_environ.clear()


def _configure(config: pytest.Config, namespace: Any) -> None:
    try:
        settings = resolve_settings(
            option=lambda name: getattr(namespace, name, None),
            ini=config.getini,
            environ=os.environ,
            rootpath=config.rootpath,
            inipath=config.inipath,
        )
        check_driver(settings.url, settings.url_source)
        state = _RunState(settings, suffix=_worker_suffix())
        if settings.url_env:
            name = settings.url_env
            state.saved_environ[name] = os.environ.get(name)
            os.environ[name] = _test_url(state).render_as_string(hide_password=False)
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_STATE] = state


def _worker_suffix() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"_{worker}" if worker else ""


def _test_url(state: _RunState) -> URL:
    """The test database's URL as the settings give it (nothing is connected)."""
    settings = state.settings
    database = TestDatabase(
        settings.url,
        source=settings.url_source,
        sqlite_dir=settings.sqlite_dir,
        suffix=state.suffix,
    )
    return database.url


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(_STATE, None)
    if state is None:
        return []
    settings = state.settings
    try:
        url = _test_url(state)
    except AlchemyError:
        return []
    notes = []
    if not state.suffix and _uses_xdist(config):
        notes.append("one per xdist worker, suffixed _gw<N>")
    if settings.reuse_db:
        notes.append("reused while its schema is unchanged")
    suffix = f" ({'; '.join(notes)})" if notes else ""
    return [
        f"alchemy: {url.get_backend_name()} test database {render_url(url)}{suffix}"
        f" [from {settings.url_source}]"
    ]


def _uses_xdist(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None))


def _state(config: pytest.Config) -> _RunState:
    state = config.stash.get(_STATE, None)
    if state is None:  # pragma: no cover - pytest_configure always runs first
        raise RuntimeError("pytest-alchemy is not configured")
    return state


def _stop(exc: AlchemyError) -> NoReturn:
    """End the run with the error's short message and no traceback."""
    if _worker_suffix():
        # An xdist worker that exits shows only "node down"; an error per test carries
        # the message to the controller (session fixtures cache it: no retry per test).
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
    code = (
        pytest.ExitCode.USAGE_ERROR
        if isinstance(exc, SettingError)
        else pytest.ExitCode.INTERRUPTED
    )
    # pytest shows an exit's message framed as "!!! _pytest.outcomes.Exit: ... !!!";
    # pytest_keyboard_interrupt prints the error itself as pytest prints usage errors.
    raise pytest.exit.Exception(
        f"pytest-alchemy stopped the run (exit code {int(code)})", returncode=code
    ) from exc


@pytest.hookimpl(trylast=True)  # after pytest's capture has stopped
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """A run stopped by ``_stop`` shows its error in the form of pytest's usage errors
    (``ERROR: pytest-alchemy: ...`` on stderr), whether it is a setting or the database."""
    error = excinfo.value.__cause__
    if isinstance(error, AlchemyError):
        sys.stdout.flush()
        sys.stderr.write(f"\nERROR: {error}\n\n")
        sys.stderr.flush()


def _guarded(action: Callable[[], T]) -> T:
    try:
        return action()
    except AlchemyError as exc:
        _stop(exc)


# -- settings as override points ------------------------------------------------------------


@pytest.fixture(scope="session")
def alchemy_url(pytestconfig: pytest.Config) -> URL | str:
    """Server and base database of the test database (``URL`` or string)."""
    return _state(pytestconfig).settings.url


@pytest.fixture(scope="session")
def alchemy_metadata(pytestconfig: pytest.Config) -> Any:
    """The MetaData (or an object with ``.metadata``) to build the schema from, or None."""
    path = _state(pytestconfig).settings.metadata
    if path is None:
        return None
    return _guarded(lambda: import_object(path, "alchemy_metadata"))


@pytest.fixture(scope="session")
def alchemy_alembic_ini(pytestconfig: pytest.Config) -> Path | None:
    """Path of alembic.ini; when set, the schema is built by ``alembic upgrade head``."""
    return _state(pytestconfig).settings.alembic_ini


@pytest.fixture(scope="session")
def alchemy_no_migrations(pytestconfig: pytest.Config) -> bool:
    """Build from metadata even when an alembic.ini is set."""
    return _state(pytestconfig).settings.no_migrations


@pytest.fixture(scope="session")
def alchemy_engines(pytestconfig: pytest.Config) -> Sequence[Engine]:
    """The application's own engines, routed into the test database and transaction (a
    line that names a function gives the Engine it returns, called once, here)."""
    paths = _state(pytestconfig).settings.engines
    return [_guarded(partial(load_engine, p)) for p in paths]


@pytest.fixture(scope="session")
def alchemy_sessionmakers(
    pytestconfig: pytest.Config,
) -> Sequence[sessionmaker[Any] | scoped_session[Any]]:
    """The application's own sessionmakers / scoped_sessions, bound to each test."""
    paths = _state(pytestconfig).settings.sessionmakers
    return [_guarded(partial(import_object, p, "alchemy_sessionmakers")) for p in paths]


@pytest.fixture(scope="session")
def alchemy_reuse_db(pytestconfig: pytest.Config) -> bool:
    """Keep the test database and reuse it while its schema is unchanged."""
    return _state(pytestconfig).settings.reuse_db


@pytest.fixture(scope="session")
def alchemy_create_db(pytestconfig: pytest.Config) -> bool:
    """Always rebuild the test database."""
    return _state(pytestconfig).settings.create_db


@pytest.fixture
def alchemy_session_options() -> dict[str, Any]:
    """Options for ``db_session``: ``class_`` (e.g. ``sqlmodel.Session``),
    ``expire_on_commit``, ``autoflush``, ``info``...; SQLAlchemy's defaults otherwise."""
    return {}


# -- the work ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _alchemy_schema(
    pytestconfig: pytest.Config,
    alchemy_metadata: Any,
    alchemy_alembic_ini: Path | str | None,
    alchemy_no_migrations: bool,
) -> SchemaSource:
    settings = _state(pytestconfig).settings

    def choose() -> SchemaSource:
        if alchemy_alembic_ini is not None and not alchemy_no_migrations:
            ini = Path(alchemy_alembic_ini)
            shown = settings.alembic_ini if ini == settings.alembic_ini else ini
            return AlembicSchema(ini, f"alchemy_alembic_ini = {shown}")
        if alchemy_metadata is not None:
            where = settings.metadata or "the alchemy_metadata fixture"
            setting = f"alchemy_metadata = {where}"
            return MetadataSchema(as_metadata(alchemy_metadata, setting), setting)
        if alchemy_alembic_ini is not None:
            raise SettingError(
                "pytest-alchemy: --alchemy-no-migrations builds the schema from "
                "alchemy_metadata, which is not set.\nFix: set alchemy_metadata = "
                "package.module:Base, or run without --alchemy-no-migrations."
            )
        return NoSchema()

    return _guarded(choose)


@pytest.fixture(scope="session")
def _alchemy_database(
    pytestconfig: pytest.Config,
    alchemy_url: URL | str,
    _alchemy_schema: SchemaSource,
    alchemy_engines: Sequence[Any],
    alchemy_reuse_db: bool,
    alchemy_create_db: bool,
) -> Iterator[TestDatabase]:
    """The run's test database: created lazily, on first use; dropped at the end."""
    state = _state(pytestconfig)
    settings = state.settings
    source = settings.url_source if alchemy_url is settings.url else "the alchemy_url fixture"
    database = _guarded(
        lambda: TestDatabase(
            parse_url(alchemy_url, source),
            source=source,
            sqlite_dir=settings.sqlite_dir,
            schema=_alchemy_schema,
            suffix=state.suffix,
            reuse=alchemy_reuse_db,
            recreate=alchemy_create_db,
        )
    )
    pytestconfig.stash[_DATABASE] = database
    redirect = EngineRedirect(database.url, database.setup, database.provisioner.configure_engine)
    try:
        for index, engine in enumerate(alchemy_engines):
            setting = _setting_name(settings.engines, index, "alchemy_engines")
            try:
                redirect.add(as_engine(engine, setting), setting)
            except AlchemyError as exc:
                _stop(exc)
        yield database
    finally:
        try:
            redirect.close()
        finally:
            try:
                database.teardown()
            except AlchemyError as exc:
                pytest.fail(str(exc), pytrace=False)


def _setting_name(paths: Sequence[str], index: int, setting: str) -> str:
    if index < len(paths):
        return f"{setting} entry {paths[index]!r}"
    return f"{setting} entry {index + 1}"


@pytest.fixture(scope="session", autouse=True)
def _alchemy_app_engines(request: pytest.FixtureRequest) -> None:
    """Point the application's engines at the test database before any fixture uses them
    (nothing is created or connected until something connects)."""
    if request.getfixturevalue("alchemy_engines"):
        request.getfixturevalue("_alchemy_database")


@pytest.fixture(scope="session")
def db_engine(_alchemy_database: TestDatabase) -> Engine:
    """An Engine on the provisioned test database, schema built."""
    return _guarded(_alchemy_database.setup)


@pytest.fixture(scope="session")
def _alchemy_session_factories(
    pytestconfig: pytest.Config, alchemy_sessionmakers: Sequence[Any]
) -> list[sessionmaker[Any] | scoped_session[Any]]:
    settings = _state(pytestconfig).settings
    factories = []
    for index, maker in enumerate(alchemy_sessionmakers):
        setting = _setting_name(settings.sessionmakers, index, "alchemy_sessionmakers")
        try:
            factories.append(as_session_factory(maker, setting))
        except AlchemyError as exc:
            _stop(exc)
    return factories


@dataclass(frozen=True)
class _Routing:
    """What every test transaction needs, resolved once a session."""

    engine: Engine
    app_engines: tuple[Engine, ...]
    session_factories: tuple[sessionmaker[Any] | scoped_session[Any], ...]


@pytest.fixture(scope="session")
def _alchemy_routing(request: pytest.FixtureRequest) -> _Routing:
    # Resolved here, once, rather than as arguments of the per-test fixture: pytest walks
    # a function fixture's whole dependency tree before every test.
    factories = request.getfixturevalue("_alchemy_session_factories")  # checked first
    engine = request.getfixturevalue("db_engine")
    app_engines = tuple(request.getfixturevalue("alchemy_engines"))
    # The test's connection comes from the application's first engine when there is one,
    # so that its own listeners, dialect options and connection set-up apply, as in
    # production (it points at the test database).
    return _Routing(app_engines[0] if app_engines else engine, app_engines, tuple(factories))


@pytest.fixture
def _alchemy_transaction(_alchemy_routing: _Routing) -> Iterator[IsolatedTransaction]:
    transaction = IsolatedTransaction(_alchemy_routing.engine)
    try:
        transaction.begin()
        for engine in _alchemy_routing.app_engines:
            transaction.route_engine(engine)
        for factory in _alchemy_routing.session_factories:
            transaction.route_sessionmaker(factory)
        yield transaction
    finally:
        transaction.close()


@pytest.fixture
def db_connection(_alchemy_transaction: IsolatedTransaction) -> Connection:
    """A Connection with an outer transaction begun, rolled back and closed after the
    test whatever it did. The application's engines and sessionmakers share it."""
    return _alchemy_transaction.connection


@pytest.fixture
def db_session(
    _alchemy_transaction: IsolatedTransaction, alchemy_session_options: dict[str, Any]
) -> Session:
    """An ORM Session on ``db_connection``; its commits release savepoints."""
    options = dict(alchemy_session_options)
    class_ = options.pop("class_", Session)
    if not (isinstance(class_, type) and issubclass(class_, Session)):
        _stop(
            SettingError(
                f"pytest-alchemy: alchemy_session_options['class_'] is {class_!r}, not a "
                "Session class.\nFix: use sqlalchemy.orm.Session or a subclass such as "
                "sqlmodel.Session."
            )
        )
    return _alchemy_transaction.session(class_, **options)


# -- the end of the run ------------------------------------------------------------------


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """One line on what the run did to its test database (created, rebuilt and why, or
    reused); nothing when no test used one. Under xdist each worker has its own database
    and the controller none, so nothing is shown there."""
    database = config.stash.get(_DATABASE, None)
    if database is None or database.outcome is None:
        return
    terminalreporter.write_line(
        f"alchemy: {database.backend} test database {render_url(database.url)} {database.outcome}"
    )
