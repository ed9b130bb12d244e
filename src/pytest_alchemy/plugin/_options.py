"""Command-line options, ini settings, the run's configuration and the header."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from .._errors import AlchemyError, SettingError
from .._settings import resolve_settings
from .._urls import render_url
from ..provision import check_driver
from ._flask import install_flask
from ._state import STATE, RunState, async_test_url, test_url, worker_suffix


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("alchemy", "pytest-alchemy: SQLAlchemy test databases")
    group.addoption(
        "--alchemy-url",
        dest="alchemy_url",
        default=None,
        metavar="URL",
        help="Server and base database for the test database, e.g. "
        "postgresql+psycopg://user@host/app (beats $PYTEST_ALCHEMY_URL and alchemy_url). "
        "Default: a SQLite file in the user's cache directory.",
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
        "The Alembic configuration (alembic.ini, pyproject.toml or their directory): "
        "the schema is built with 'alembic upgrade heads'.",
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
    parser.addini(
        "alchemy_async_url_env",
        "Name of an environment variable set to the test database URL with an async "
        "driver (sqlite+aiosqlite, postgresql+psycopg_async, mysql+aiomysql...) before "
        "test modules are imported.",
    )
    parser.addini(
        "alchemy_prepare_database",
        "package.module:function called as function(connection) on a new test database, "
        "in its own committed transaction, before the schema is built (extensions...).",
    )
    parser.addini(
        "alchemy_flask_app",
        "package.module:create_app (or :app) of a Flask-SQLAlchemy application: its "
        "database URI is pinned to the test database before the factory runs.",
    )
    parser.addini(
        "alchemy_flask_db",
        "package.module:db, the application's Flask-SQLAlchemy extension (SQLAlchemy()).",
    )
    parser.addini(
        "alchemy_flask_app_scope",
        "pytest scope of the app the factory makes (session, package, module, class, "
        "function). Default: session.",
        default="session",
    )
    parser.addini(
        "alchemy_bind_urls",
        "key = url, one a line: the base URL of a Flask-SQLAlchemy bind's test database "
        "(default: the run's base URL, the database named test_<base>_<key>).",
        type="linelist",
    )
    parser.addini(
        "alchemy_factories",
        "factory_boy / polyfactory SQLAlchemy factories (package.module:Factory, or "
        "package.module for all it defines), one a line, bound to db_session in each test.",
        type="linelist",
    )
    parser.addini(
        "alchemy_lock_timeout",
        "Seconds a statement may wait for a lock (or a thread for its turn on the "
        "test's connection) before it fails instead of hanging. Default: 10.",
        default="10",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    # Before conftest.py files are imported: apps read their URL at import time.
    _configure(early_config, early_config.known_args_namespace)


def pytest_configure(config: pytest.Config) -> None:
    if STATE not in config.stash:
        _configure(config, config.option)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    state.installed.close()
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
        state = RunState(settings, suffix=worker_suffix())
        if settings.url_env:
            name = settings.url_env
            state.saved_environ[name] = os.environ.get(name)
            os.environ[name] = test_url(state).render_as_string(hide_password=False)
        if settings.async_url_env or settings.async_driver:
            url = async_test_url(state)  # checks the async driver is installed
            if settings.async_url_env:
                name = settings.async_url_env
                state.saved_environ[name] = os.environ.get(name)
                os.environ[name] = url.render_as_string(hide_password=False)
        if settings.flask_app:
            install_flask(state)
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[STATE] = state


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE, None)
    if state is None:
        return []
    settings = state.settings
    try:
        url = test_url(state)
    except AlchemyError:
        return []
    notes = []
    if not state.suffix and bool(getattr(config.option, "numprocesses", None)):
        notes.append("one per xdist worker, suffixed _gw<N>")
    if settings.reuse_db:
        notes.append("reused while its schema is unchanged")
    if settings.async_driver:
        notes.append(f"async engines on {settings.async_driver} over {url.get_driver_name()}")
    suffix = f" ({'; '.join(notes)})" if notes else ""
    return [
        f"alchemy: {url.get_backend_name()} test database {render_url(url)}{suffix}"
        f" [from {settings.url_source}]"
    ]


@pytest.hookimpl(trylast=True)  # after pytest's capture has stopped
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """A run stopped by pytest-alchemy shows its error in the form of pytest's usage
    errors (``ERROR: pytest-alchemy: ...`` on stderr), whether a setting or the database."""
    error = excinfo.value.__cause__
    if isinstance(error, AlchemyError):
        sys.stdout.flush()
        sys.stderr.write(f"\nERROR: {error}\n\n")
        sys.stderr.flush()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """One line on what the run did to each test database (created, rebuilt and why, or
    reused): the run's, and one per further Flask-SQLAlchemy bind; nothing when no test
    used one. Under xdist each worker has its own database
    and the controller none, so nothing is shown there."""
    state = config.stash.get(STATE, None)
    if state is None:
        return
    for database in [state.database, *state.binds.values()]:
        if database is not None and database.outcome is not None:
            terminalreporter.write_line(
                f"alchemy: {database.backend} test database {render_url(database.url)} "
                f"{database.outcome}"
            )
