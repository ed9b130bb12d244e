"""The run's state, kept in the pytest config's stash, and how errors stop the run."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn, TypeVar

import pytest
from sqlalchemy.engine import URL, Engine

from .._database import TestDatabase
from .._errors import AlchemyError, SettingError
from .._settings import Settings
from .._urls import parse_url
from ..isolation._asyncio import async_url
from ._scopes import ScopeTracker

if TYPE_CHECKING:
    from ..integrations.flask import ConfigPin
    from ._isolation import RunIsolation

T = TypeVar("T")


@dataclass
class RunState:
    settings: Settings
    suffix: str
    #: Environment variables set for the run, with the values to restore.
    saved_environ: dict[str, str | None] = field(default_factory=dict)
    #: Which scope pytest is in (session, package, module, class, test).
    scopes: ScopeTracker = field(default_factory=ScopeTracker)
    #: The shared connection and routing, once a test needs them.
    isolation: RunIsolation | None = None
    #: The run's test database, for the terminal summary.
    database: TestDatabase | None = None
    #: What the run installed in other libraries (Flask's config pinning...), undone at
    #: pytest_unconfigure.
    installed: ExitStack = field(default_factory=ExitStack)
    #: Engines made from a pinned URL before the isolation started (an app built at
    #: import), routed when it starts.
    pending_engines: list[tuple[Engine, str | None]] = field(default_factory=list)
    #: The test databases of further binds (Flask-SQLAlchemy bind keys), by key.
    binds: dict[str, TestDatabase] = field(default_factory=dict)
    #: Makes the test database of a bind key (set by the database fixture).
    make_bind: Callable[[str], TestDatabase] | None = None
    #: Whether an app is being made only to read its configuration (engines not routed).
    probing: bool = False
    #: The pinning of Flask apps' configs, when alchemy_flask_app is set.
    flask_pin: ConfigPin | None = None


STATE = pytest.StashKey[RunState]()


def state_of(config: pytest.Config) -> RunState:
    state = config.stash.get(STATE, None)
    if state is None:  # pragma: no cover - pytest_configure always runs first
        raise RuntimeError("pytest-alchemy is not configured")
    return state


def worker_suffix() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"_{worker}" if worker else ""


def async_test_url(state: RunState, url: URL | None = None) -> URL:
    """The test database's URL (``url``, else as the settings give it) with the async
    driver ``alchemy_url`` named, else the one that runs over its sync driver. Raises
    SettingError if there is none, or it is not installed."""
    settings = state.settings
    return async_url(url or test_url(state), settings.url_source, settings.async_driver)


def test_url(state: RunState, bind: str | None = None) -> URL:
    """The URL of the test database (of bind ``bind``) as the settings give it (nothing
    is connected)."""
    settings = state.settings
    url, source = bind_base(settings, bind)
    database = TestDatabase(
        url, source=source, sqlite_dir=settings.sqlite_dir, suffix=bind_suffix(state, bind)
    )
    return database.url


def bind_database(state: RunState, bind: str) -> TestDatabase:
    """The test database of bind ``bind``, made on first need (not set up)."""
    found = state.binds.get(bind)
    if found is None:
        if state.make_bind is None:  # pragma: no cover - the database fixture sets it
            raise RuntimeError("pytest-alchemy: no test database yet")
        found = state.binds[bind] = state.make_bind(bind)
    return found


def bind_base(settings: Settings, bind: str | None) -> tuple[URL, str]:
    """The base URL of bind ``bind``'s test database, and the setting it comes from:
    its ``alchemy_bind_urls`` entry, else the run's base URL."""
    if bind is not None and bind in settings.bind_urls:
        source = f"alchemy_bind_urls entry {bind!r}"
        return parse_url(settings.bind_urls[bind], source), source
    return settings.url, settings.url_source


def bind_suffix(state: RunState, bind: str | None) -> str:
    """``_<bind key>`` (characters other than letters, digits and ``_`` replaced by
    ``_``) before the xdist worker's suffix; only the latter for the default bind."""
    if bind is None:
        return state.suffix
    return f"_{re.sub(r'[^A-Za-z0-9_]', '_', bind)}{state.suffix}"


def stop(exc: AlchemyError) -> NoReturn:
    """End the run with the error's short message and no traceback."""
    if worker_suffix():
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


def guarded(action: Callable[[], T]) -> T:
    try:
        return action()
    except AlchemyError as exc:
        stop(exc)
