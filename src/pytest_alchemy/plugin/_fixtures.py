"""The fixtures: each setting as an override point, and the ones that do the work.

Each setting is also a session fixture of the same name that a conftest.py may override
(the way pytest-django's small fixtures are override points); the fixtures that do the
work are built from those.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import scoped_session, sessionmaker

from .._database import TestDatabase
from .._errors import AlchemyError, SettingError
from .._routing import EngineRedirect
from .._settings import as_engine, as_metadata, as_session_factory, import_object, load_engine
from .._urls import parse_url, render_url
from ..integrations._flask_migrate import FlaskMigrateSchema
from ..integrations.flask import is_lite
from ..isolation._asyncio import AsyncEngine, sync_url
from ..schema import AlembicSchema, MetadataSchema, NoSchema, SchemaSource
from ..schema._prepare import PrepareFunction, PrepareHook
from ._async import sqlmodel_options
from ._flask import (
    adopt_pending,
    bind_schema,
    flask_schema,
    known_binds,
)
from ._isolation import RunIsolation
from ._state import (
    RunState,
    async_test_url,
    bind_base,
    bind_database,
    bind_suffix,
    guarded,
    state_of,
    stop,
)

# -- settings as override points ------------------------------------------------------------


@pytest.fixture(scope="session")
def alchemy_url(pytestconfig: pytest.Config) -> URL | str:
    """Server and base database of the test database (``URL`` or string)."""
    return state_of(pytestconfig).settings.url


@pytest.fixture(scope="session")
def alchemy_metadata(pytestconfig: pytest.Config) -> Any:
    """The MetaData (or an object with ``.metadata``) to build the schema from, or None."""
    path = state_of(pytestconfig).settings.metadata
    if path is None:
        return None
    return guarded(lambda: import_object(path, "alchemy_metadata"))


@pytest.fixture(scope="session")
def alchemy_alembic_ini(pytestconfig: pytest.Config) -> Path | None:
    """The Alembic configuration (``Path``, relative to the pytest ini file's directory);
    when set, the schema is built by ``alembic upgrade heads``.

    It may name an ``alembic.ini`` (the ``pyproject.toml`` beside it is read too when it
    has a ``[tool.alembic]`` table, as the ``alembic`` command run from there does; an
    ini that does not exist falls back to that ``pyproject.toml``), a ``pyproject.toml``
    with ``[tool.alembic]`` (Alembic >= 1.16; the ``alembic.ini`` beside it, if any, is
    read too, as ``alembic init -t pyproject`` lays them out), or a directory holding
    either. Relative ``script_location``, ``version_locations`` and ``prepend_sys_path``
    are taken relative to the file that sets them. Problems raise SettingError."""
    return state_of(pytestconfig).settings.alembic_ini


@pytest.fixture(scope="session")
def alchemy_no_migrations(pytestconfig: pytest.Config) -> bool:
    """Build from metadata even when an alembic.ini is set."""
    return state_of(pytestconfig).settings.no_migrations


@pytest.fixture(scope="session")
def alchemy_prepare_database(pytestconfig: pytest.Config) -> PrepareFunction | None:
    """A function ``prepare(connection) -> None`` run on a new test database, in its own
    committed transaction, before the schema is built (``CREATE EXTENSION``...); None
    for none. Not run when the database is reused."""
    path = state_of(pytestconfig).settings.prepare_database
    if path is None:
        return None
    return guarded(lambda: import_object(path, "alchemy_prepare_database"))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def alchemy_engines(pytestconfig: pytest.Config) -> Sequence[Engine | AsyncEngine]:
    """The application's own engines (``Engine`` or ``AsyncEngine``), routed into the
    test database and transaction (a line that names a function gives the engine it
    returns, called once, here)."""
    paths = state_of(pytestconfig).settings.engines
    return [guarded(partial(load_engine, p)) for p in paths]


@pytest.fixture(scope="session")
def alchemy_sessionmakers(
    pytestconfig: pytest.Config,
) -> Sequence[sessionmaker[Any] | scoped_session[Any]]:
    """The application's own sessionmakers / scoped_sessions, bound to each test."""
    paths = state_of(pytestconfig).settings.sessionmakers
    return [guarded(partial(import_object, p, "alchemy_sessionmakers")) for p in paths]


@pytest.fixture(scope="session")
def alchemy_reuse_db(pytestconfig: pytest.Config) -> bool:
    """Keep the test database and reuse it while its schema is unchanged."""
    return state_of(pytestconfig).settings.reuse_db


@pytest.fixture(scope="session")
def alchemy_create_db(pytestconfig: pytest.Config) -> bool:
    """Always rebuild the test database."""
    return state_of(pytestconfig).settings.create_db


@pytest.fixture(scope="session")
def alchemy_session_options(alchemy_metadata: Any) -> dict[str, Any]:
    """Options for ``db_session`` (and its module and class counterparts) and
    ``async_db_session``: ``class_`` (a Session or AsyncSession class, e.g.
    ``sqlmodel.Session``), ``expire_on_commit``, ``autoflush``, ``info``...; SQLAlchemy's
    defaults otherwise, but SQLModel's session classes when ``alchemy_metadata`` is
    SQLModel (so that ``exec()`` works). Override it with a session-scoped fixture."""
    return sqlmodel_options(alchemy_metadata)


# -- the work ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _alchemy_schema(
    request: pytest.FixtureRequest,
    pytestconfig: pytest.Config,
    alchemy_metadata: Any,
    alchemy_alembic_ini: Path | str | None,
    alchemy_no_migrations: bool,
) -> SchemaSource:
    settings = state_of(pytestconfig).settings

    def choose() -> SchemaSource:
        if alchemy_alembic_ini is not None and not alchemy_no_migrations:
            ini = Path(alchemy_alembic_ini)
            shown = settings.alembic_ini if ini == settings.alembic_ini else ini
            return AlembicSchema(ini, f"alchemy_alembic_ini = {shown}")
        if settings.flask_db and not is_lite(request.getfixturevalue("alchemy_flask_db")):
            return flask_schema(request, alchemy_no_migrations)
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

    return guarded(choose)


@pytest.fixture(scope="session")
def _alchemy_database(
    request: pytest.FixtureRequest,
    pytestconfig: pytest.Config,
    alchemy_url: URL | str,
    _alchemy_schema: SchemaSource,
    alchemy_reuse_db: bool,
    alchemy_create_db: bool,
    alchemy_prepare_database: PrepareFunction | None,
) -> Iterator[TestDatabase]:
    """The run's test database: created lazily, on first use; dropped at the end."""
    state = state_of(pytestconfig)
    settings = state.settings
    source = settings.url_source if alchemy_url is settings.url else "the alchemy_url fixture"
    prepare = guarded(lambda: _prepare_hook(alchemy_prepare_database, settings.prepare_database))
    database = guarded(
        lambda: TestDatabase(
            sync_url(parse_url(alchemy_url, source)),
            source=source,
            sqlite_dir=settings.sqlite_dir,
            schema=_alchemy_schema,
            suffix=state.suffix,
            reuse=alchemy_reuse_db,
            recreate=alchemy_create_db,
            lock_timeout=settings.lock_timeout,
            prepare=prepare,
            on_rename=partial(_follow_rename, state),
        )
    )
    state.database = database
    base = database.provisioner.base_url

    def make_bind(key: str) -> TestDatabase:
        url, where = bind_base(settings, key)
        if key not in settings.bind_urls:
            url, where = base, source
        made = TestDatabase(
            url,
            source=where,
            sqlite_dir=settings.sqlite_dir,
            schema=bind_schema(request, _alchemy_schema, key),
            suffix=bind_suffix(state, key),
            reuse=alchemy_reuse_db,
            recreate=alchemy_create_db,
            lock_timeout=settings.lock_timeout,
        )
        others = {
            "the default bind's": database,
            **{f"bind {k!r}'s": d for k, d in state.binds.items()},
        }
        for whose, other in others.items():
            if set(made.candidate_urls()) & set(other.candidate_urls()):
                raise SettingError(
                    f"pytest-alchemy: the test database of bind {key!r} would be "
                    f"{made.primary!r} at {render_url(made.url)}, which {whose} test "
                    f"database may take too.\nFix: give {where} another base database."
                )
        return made

    state.make_bind = make_bind
    try:
        for key in guarded(partial(known_binds, request)):
            guarded(partial(bind_database, state, key))
        yield database
    finally:
        errors = []
        for each in [*state.binds.values(), database]:
            try:
                each.teardown()
            except AlchemyError as exc:
                errors.append(str(exc))
        state.make_bind = None
        if errors:
            pytest.fail("\n".join(errors), pytrace=False)


def _prepare_hook(function: Any, path: str | None) -> PrepareHook | None:
    if function is None:
        return None
    if path is not None:
        setting = f"alchemy_prepare_database = {path}"
    else:
        setting = "the alchemy_prepare_database fixture"
    if not callable(function):
        raise SettingError(
            f"pytest-alchemy: {setting} is a {type(function).__name__}, not a function.\n"
            "Fix: name a function prepare(connection) -> None, or return one (or None) "
            "from the alchemy_prepare_database fixture."
        )
    return PrepareHook(function, setting)


def _follow_rename(state: RunState, url: URL) -> None:
    """Point ``alchemy_url_env`` and ``alchemy_async_url_env`` at the name the run took
    instead (restored after the run with the rest of the environment)."""
    settings = state.settings
    if settings.url_env:
        os.environ[settings.url_env] = url.render_as_string(hide_password=False)
    if settings.async_url_env:
        made = async_test_url(state, url)
        os.environ[settings.async_url_env] = made.render_as_string(hide_password=False)


def _setting_name(paths: Sequence[str], index: int, setting: str) -> str:
    if index < len(paths):
        return f"{setting} entry {paths[index]!r}"
    return f"{setting} entry {index + 1}"


def _checked(
    objects: Sequence[Any], paths: Sequence[str], setting: str, check: Callable[[Any, str], Any]
) -> list[tuple[Any, str]]:
    checked = []
    for index, obj in enumerate(objects):
        name = _setting_name(paths, index, setting)
        try:
            checked.append((check(obj, name), name))
        except AlchemyError as exc:
            stop(exc)
    return checked


@pytest.fixture(scope="session")
def _alchemy_isolation(request: pytest.FixtureRequest) -> Iterator[RunIsolation]:
    """The shared connection and the routing of every engine, for the whole run (nothing
    connects until a statement runs)."""
    state = state_of(request.config)
    settings = state.settings
    factories = _checked(
        request.getfixturevalue("alchemy_sessionmakers"),
        settings.sessionmakers,
        "alchemy_sessionmakers",
        as_session_factory,
    )
    engines = _checked(
        request.getfixturevalue("alchemy_engines"),
        settings.engines,
        "alchemy_engines",
        as_engine,
    )
    database: TestDatabase = request.getfixturevalue("_alchemy_database")
    redirect = EngineRedirect(
        database.url,
        database.setup,
        database.provisioner.shared_connect_args(),
        current_url=lambda: database.url,
    )
    try:
        for engine, setting in engines:
            guarded(partial(redirect.add, engine, setting))
        isolation = guarded(
            lambda: RunIsolation(
                database,
                state.scopes,
                engines,
                [factory for factory, _ in factories],
                lock_timeout=settings.lock_timeout,
                async_url=partial(async_test_url, state),
                redirect=redirect,
                bind_databases=lambda: dict(state.binds),
                bind_database=partial(bind_database, state),
                group_build=isinstance(database.schema, FlaskMigrateSchema),
            )
        )
        state.isolation = isolation
        try:
            adopt_pending(state, isolation)
            yield isolation
        finally:
            state.isolation = None
            isolation.close()
    finally:
        redirect.close()


@pytest.fixture(scope="session", autouse=True)
def _alchemy_app_routing(request: pytest.FixtureRequest) -> None:
    """Route the application's engines before any fixture or test uses them, whether or
    not the test asked for a database fixture (nothing is connected until used). With
    ``alchemy_url_env`` set, the application reaches the test database by itself: the
    guard against engines nobody listed is on from the first test too."""
    names = ("alchemy_engines", "alchemy_sessionmakers")
    settings = state_of(request.config).settings
    if (
        settings.url_env
        or settings.async_url_env
        or settings.flask_app
        or any(request.getfixturevalue(name) for name in names)
    ):
        request.getfixturevalue("_alchemy_isolation")


@pytest.fixture(scope="session")
def db_engine(_alchemy_isolation: RunIsolation) -> Engine:
    """An Engine on the provisioned test database, schema built. Its connections (and
    ``raw_connection()``) join the layered transaction of whatever scope uses them."""
    return guarded(_alchemy_isolation.setup)
