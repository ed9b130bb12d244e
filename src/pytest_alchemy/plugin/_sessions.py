"""The session fixtures: ``db_connection``, ``db_session`` and its module and class
counterparts, on the application's first engine (or ``db_engine``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ._async import sync_session_class
from ._flask import flask_binds, flask_session
from ._isolation import RunIsolation
from ._state import guarded, state_of


def _session(
    isolation: RunIsolation,
    options: dict[str, Any],
    label: str,
    request: pytest.FixtureRequest | None = None,
) -> Iterator[Session]:
    options = dict(options)
    class_ = guarded(lambda: sync_session_class(options.pop("class_", Session)))
    guarded(isolation.setup)
    if request is not None:  # Flask-SQLAlchemy binds: each bind's tables on its engine
        binds = flask_binds(request, isolation)
        if binds:
            options["binds"] = {**binds, **options.get("binds", {})}
    session = isolation.session(label, class_, **options)
    try:
        yield session
    finally:
        session.close()
        isolation.forget_session(session)


@pytest.fixture
def db_connection(_alchemy_isolation: RunIsolation) -> Iterator[Connection]:
    """A Connection of the application's first engine (or ``db_engine``) in a
    transaction; its ``commit()`` keeps the data for the rest of the test only."""
    guarded(_alchemy_isolation.setup)
    connection = _alchemy_isolation.primary.connect()
    try:
        connection.begin()
        yield connection
    finally:
        connection.close()


@pytest.fixture
def db_session(
    request: pytest.FixtureRequest,
    _alchemy_isolation: RunIsolation,
    alchemy_session_options: dict[str, Any],
) -> Iterator[Session]:
    """An ORM Session on the application's first engine (or ``db_engine``); what it
    commits lasts until the end of the test. With ``alchemy_flask_db`` set, it is the
    Flask-SQLAlchemy session the app's code uses (``db.session()`` in the app context
    ``flask_app`` pushes), so views see what the test adds and the reverse."""
    if state_of(request.config).settings.flask_db:
        session = flask_session(request)
        _alchemy_isolation.router.session_labels[id(session)] = "db_session"
        try:
            yield session
        finally:
            _alchemy_isolation.forget_session(session)
        return
    yield from _session(_alchemy_isolation, alchemy_session_options, "db_session")


@pytest.fixture(scope="module")
def module_db_session(
    request: pytest.FixtureRequest,
    _alchemy_isolation: RunIsolation,
    alchemy_session_options: dict[str, Any],
) -> Iterator[Session]:
    """A Session for module-scoped fixtures: what it commits while they are set up lasts
    until the end of the module. With Flask-SQLAlchemy binds, each bind's tables are
    bound to that bind's test database."""
    yield from _session(_alchemy_isolation, alchemy_session_options, "module_db_session", request)


@pytest.fixture(scope="class")
def class_db_session(
    request: pytest.FixtureRequest,
    _alchemy_isolation: RunIsolation,
    alchemy_session_options: dict[str, Any],
) -> Iterator[Session]:
    """A Session for class-scoped fixtures: what it commits while they are set up lasts
    until the end of the class. With Flask-SQLAlchemy binds, each bind's tables are
    bound to that bind's test database."""
    yield from _session(_alchemy_isolation, alchemy_session_options, "class_db_session", request)
