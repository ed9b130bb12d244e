"""Flask-SQLAlchemy: the settings' fixtures, the app the factory makes (at the scope
``alchemy_flask_app_scope`` names), ``flask_app`` and ``flask_client``.

The test database URL is pinned into every Flask app's config from the start of the run
(:func:`install_flask`, before conftest.py files and the application are imported), and
every engine made from it is routed into the test's layered transactions as it is made.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL, Engine

from .._errors import SettingError
from .._settings import import_object
from ..integrations._engines import engines_created
from ..integrations.flask import (
    ConfigPin,
    check_creators,
    check_engines,
    is_lite,
    make_app,
    metadata_of,
    session_of,
)
from ..schema import MetadataSchema, NoSchema, SchemaSource
from ._isolation import RunIsolation
from ._state import RunState, bind_database, guarded, state_of, stop, test_url


def install_flask(state: RunState) -> None:
    """Pin every Flask app's database URI to the test database and route the engines
    made from it, until pytest_unconfigure."""
    pin = ConfigPin(partial(_current_url, state))
    state.installed.enter_context(pin.installed())
    state.installed.enter_context(engines_created(partial(_engine_created, state)))
    state.flask_pin = pin


def _current_url(state: RunState, bind: str | None) -> URL:
    """The URL of the test database of ``bind`` (None: the default one): the name the
    run took, once it took one."""
    if state.database is None:
        return test_url(state, bind)
    if bind is None:
        return state.database.url
    return bind_database(state, bind).url


def _engine_created(state: RunState, engine: Engine, bind: str | None) -> None:
    isolation = state.isolation
    if state.probing:
        return
    if isolation is None:
        state.pending_engines.append((engine, bind))
    elif not isolation.plugin_connected():  # not one made to build the schema
        isolation.adopt(engine, _label(state, bind), bind)


def _label(state: RunState, bind: str | None) -> str:
    which = "an engine" if bind is None else f"the engine of bind {bind!r}"
    return f"{which} of the app made by alchemy_flask_app = {state.settings.flask_app}"


def adopt_pending(state: RunState, isolation: RunIsolation) -> None:
    """Route the engines made before the isolation started (apps built at import)."""
    engines, state.pending_engines = state.pending_engines, []
    for engine, bind in engines:
        guarded(partial(isolation.adopt, engine, _label(state, bind), bind))


# -- settings as override points ------------------------------------------------------------


@pytest.fixture(scope="session")
def alchemy_flask_app(pytestconfig: pytest.Config) -> Any:
    """The Flask app factory (a callable returning a ``flask.Flask``) or app object that
    ``alchemy_flask_app`` names; None when unset."""
    from ..integrations.flask import check_app_or_factory

    path = state_of(pytestconfig).settings.flask_app
    return _load(path, "alchemy_flask_app", check_app_or_factory)


@pytest.fixture(scope="session")
def alchemy_flask_db(pytestconfig: pytest.Config) -> Any:
    """The ``flask_sqlalchemy.SQLAlchemy`` (or Flask-SQLAlchemy-Lite) extension that
    ``alchemy_flask_db`` names; None when unset."""
    from ..integrations.flask import check_db

    return _load(state_of(pytestconfig).settings.flask_db, "alchemy_flask_db", check_db)


def _load(path: str | None, name: str, check: Callable[[Any, str], Any]) -> Any:
    """The object an ini line names, checked; None when the line is unset."""
    if path is None:
        return None
    setting = f"{name} = {path}"
    return guarded(lambda: check(import_object(path, setting), setting))


@pytest.fixture(scope="session")
def alchemy_flask_app_args() -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` the factory is called with: ``((), {})``. Override it to pass a
    config object or a test config dict; at class scope (``((request.cls,), {})``) with
    ``alchemy_flask_app_scope = class`` or ``function``."""
    return (), {}


# -- the work ------------------------------------------------------------------------------


def _app_scope(fixture_name: str, config: pytest.Config) -> Any:
    return state_of(config).settings.flask_app_scope


def _setting(state: RunState) -> str:
    return f"alchemy_flask_app = {state.settings.flask_app or 'the alchemy_flask_app fixture'}"


@pytest.fixture(scope=_app_scope)
def _alchemy_flask_app(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The app, made by the factory with ``alchemy_flask_app_args`` once per
    ``alchemy_flask_app_scope``, on the provisioned test database."""
    state = state_of(request.config)
    factory = request.getfixturevalue("alchemy_flask_app")
    db = request.getfixturevalue("alchemy_flask_db")
    if factory is None or db is None:
        stop(
            SettingError(
                "pytest-alchemy: flask_app needs alchemy_flask_app and alchemy_flask_db.\n"
                "Fix: set alchemy_flask_app = package.module:create_app and "
                "alchemy_flask_db = package.module:db in the ini file."
            )
        )
    args, kwargs = request.getfixturevalue("alchemy_flask_app_args")
    isolation: RunIsolation = request.getfixturevalue("_alchemy_isolation")
    schema = request.getfixturevalue("_alchemy_schema")
    setting = _setting(state)
    build = partial(_make_app, state, factory, args, kwargs)

    if hasattr(schema, "make_app"):  # Flask-Migrate: the build makes an app the same way
        schema.make_app = build
    guarded(isolation.setup)
    app = guarded(build)
    guarded(isolation.setup)  # bind keys first seen in the factory's config
    if state.flask_pin is not None:
        guarded(partial(check_creators, state.flask_pin, setting))
    guarded(partial(check_engines, app, db, setting, isolation.is_routed))
    _check_migrations(request, app, schema, setting)
    yield app


def _check_migrations(
    request: pytest.FixtureRequest, app: Any, schema: SchemaSource, setting: str
) -> None:
    """An app with Flask-Migrate's migrations whose database was built from the models
    (its directory was not found before the app was made): stop, rather than test a
    schema the migrations do not make."""
    from ..integrations._flask_migrate import FlaskMigrateSchema, migrations_of

    if isinstance(schema, FlaskMigrateSchema) or request.getfixturevalue("alchemy_no_migrations"):
        return
    directory = migrations_of(app, _roots(request.config))
    if directory is not None:
        stop(
            SettingError(
                f"pytest-alchemy: the app made by {setting} uses Flask-Migrate's "
                f"migrations in {directory}, which pytest-alchemy could not find before "
                "the app was made (it looks at module-level Migrate objects, at "
                "./migrations, and at an app made without arguments), so the test "
                "database was built from the models instead.\nFix: make the Migrate "
                f"object at module level (migrate = Migrate(directory={directory.name!r}"
                ")), or build from the models on purpose with --alchemy-no-migrations."
            )
        )


def _roots(config: pytest.Config) -> list[Path]:
    """Where a relative migrations directory is looked for: the current directory (as
    Flask-Migrate does), the ini file's and the rootdir."""
    return [Path.cwd(), *([config.inipath.parent] if config.inipath else []), config.rootpath]


def _make_app(state: RunState, factory: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """The app ``factory(*args, **kwargs)`` makes, on the run's test databases, under
    the guard (see :func:`make_app`)."""
    database = state.database
    assert database is not None  # the database fixture is set up first
    return make_app(
        factory,
        args,
        kwargs,
        setting=_setting(state),
        test_url=database.url,
        provisioner=database.provisioner,
        others=partial(_test_urls, state),
    )


def _probe(state: RunState, factory: Any) -> Any:
    """The app, made only to read its configuration: its engines are not routed."""
    from flask import Flask

    if isinstance(factory, Flask):
        return factory
    state.probing = True
    try:
        return factory()
    finally:
        state.probing = False


def _default_built(state: RunState) -> bool:
    return state.database is not None and state.database.is_set_up


def _test_urls(state: RunState) -> list[URL]:
    """Every URL the run's test databases may have (each candidate name of each)."""
    databases = [state.database, *state.binds.values()]
    return [url for each in databases if each is not None for url in each.candidate_urls()]


def known_binds(request: pytest.FixtureRequest) -> list[str]:
    """The bind keys known before any app is made: those of the models imported so far
    (Flask-SQLAlchemy keeps a MetaData per bind key) and of ``alchemy_bind_urls``."""
    state = state_of(request.config)
    keys = set(state.settings.bind_urls)
    if state.settings.flask_db:
        db = request.getfixturevalue("alchemy_flask_db")
        if not is_lite(db):
            keys.update(str(key) for key in db.metadatas if key is not None)
    if state.flask_pin is not None:
        keys.update(state.flask_pin.binds)
    return sorted(keys)


def bind_schema(request: pytest.FixtureRequest, schema: SchemaSource, key: str) -> SchemaSource:
    """A further bind's schema: migrated by the default bind's build (Flask-Migrate),
    or ``create_all`` of the MetaData of its models."""
    from ..integrations._flask_migrate import FlaskMigrateSchema, GroupMember

    state = state_of(request.config)
    if isinstance(schema, FlaskMigrateSchema):
        return GroupMember(schema, key, partial(_default_built, state))
    db = request.getfixturevalue("alchemy_flask_db") if state.settings.flask_db else None
    if db is None or is_lite(db):
        return NoSchema()
    setting = f"alchemy_flask_db = {state.settings.flask_db}"
    return MetadataSchema(metadata_of(db, key), f"{setting}, bind {key!r}")


def flask_schema(request: pytest.FixtureRequest, no_migrations: bool) -> SchemaSource:
    """Flask-Migrate's migrations when the app has a migrations directory (and
    ``--alchemy-no-migrations`` is not given), else ``create_all`` of the models."""
    from ..integrations._flask_migrate import (
        FlaskMigrateSchema,
        find_migrations,
        probe_migrations,
    )

    state = state_of(request.config)
    db = request.getfixturevalue("alchemy_flask_db")
    db_setting = f"alchemy_flask_db = {state.settings.flask_db}"
    roots = _roots(request.config)
    factory = request.getfixturevalue("alchemy_flask_app")
    directory = None if no_migrations else find_migrations(db, roots)
    if directory is None and not no_migrations and "flask_migrate" in sys.modules:
        # Migrate(app, db, directory=...) in the factory: ask an app made for the purpose.
        directory = probe_migrations(partial(_probe, state, factory), roots)
    if directory is None:
        return MetadataSchema(metadata_of(db, None), db_setting)

    # Until _alchemy_flask_app gives the build its arguments (a test that asks for
    # db_engine before any app was made): the factory without arguments.
    default_app = partial(_make_app, state, factory, (), {})
    schema = FlaskMigrateSchema(directory, _setting(state), default_app)
    schema.bind_urls = partial(_test_urls, state)
    return schema


@pytest.fixture
def flask_app(request: pytest.FixtureRequest, _alchemy_flask_app: Any) -> Iterator[Any]:
    """The Flask app (``flask.Flask``) on the test database, with an app context pushed
    for the test: ``db.session``, ``Model.query`` and the views' commits and rollbacks
    stay in the test's transaction. When the app outlives the test
    (``alchemy_flask_app_scope`` wider than function), changes the test makes to
    ``app.config`` are undone after it (a shallow copy: changes inside nested values
    are not)."""
    app = _alchemy_flask_app
    saved = None if _app_scope("", request.config) == "function" else copy.copy(dict(app.config))
    context = app.app_context()
    context.push()
    try:
        yield app
    finally:
        context.pop()
        if saved is not None:
            dict.clear(app.config)
            dict.update(app.config, saved)


@pytest.fixture
def flask_client(flask_app: Any) -> Any:
    """``flask_app.test_client()`` (a ``flask.testing.FlaskClient``): its requests run
    inside the test's app context, so they see what the test added and the test sees
    what they commit."""
    return flask_app.test_client()


def flask_binds(request: pytest.FixtureRequest, isolation: RunIsolation) -> dict[Any, Engine]:
    """For a Session outside the app context (``module_db_session``...): each table of a
    Flask-SQLAlchemy bind key's models to that bind's routed engine, as
    ``Session(binds=...)`` takes them. Empty without Flask-SQLAlchemy binds."""
    state = state_of(request.config)
    if not state.settings.flask_db:
        return {}
    db = request.getfixturevalue("alchemy_flask_db")
    if is_lite(db):
        return {}
    binds: dict[Any, Engine] = {}
    for key, metadata in db.metadatas.items():
        if key is not None:
            engine = guarded(partial(isolation.bind, str(key))).database.engine
            binds.update(dict.fromkeys(metadata.tables.values(), engine))
    return binds


def flask_session(request: pytest.FixtureRequest) -> Any:
    """``db.session()`` in the test's app context: the session the app's code uses."""
    request.getfixturevalue("flask_app")
    return session_of(request.getfixturevalue("alchemy_flask_db"))
