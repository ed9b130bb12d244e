"""Test data factories (``alchemy_factories``) bound to ``db_session`` in every test."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from ..integrations.factories import FactoryBinding, load_factories
from ._state import guarded, state_of


@pytest.fixture(scope="session")
def alchemy_factories(pytestconfig: pytest.Config) -> Sequence[type]:
    """The factory classes bound to ``db_session`` in each test: those the
    ``alchemy_factories`` lines name (a module line gives every concrete factory it
    defines). Binding is on only while that setting is set; a ``conftest.py`` may
    override this fixture to change the list.

    Stops the run (``SettingError``) on a line that does not import, names no factory,
    names a module that defines none, or needs a factory library that is not installed.
    """
    entries = state_of(pytestconfig).settings.factories
    if not entries:
        return []
    return guarded(lambda: load_factories(entries))


@pytest.fixture(scope="session")
def _alchemy_factory_binding(alchemy_factories: Sequence[object]) -> FactoryBinding:
    """The factories, checked once (an overriding fixture may return anything)."""
    return guarded(lambda: FactoryBinding(alchemy_factories, "the alchemy_factories fixture"))


@pytest.fixture(autouse=True)
def _alchemy_bind_factories(request: pytest.FixtureRequest) -> Iterator[None]:
    """Bind the factories to the test's ``db_session`` (and polyfactory's async
    persistence to ``async_db_session`` when the test uses that fixture) and put them
    back afterwards. Without ``alchemy_factories`` set it requests nothing, so tests that
    need no database get none."""
    if not state_of(request.config).settings.factories:
        yield
        return
    binding: FactoryBinding = request.getfixturevalue("_alchemy_factory_binding")
    async_session = (
        request.getfixturevalue("async_db_session")
        if "async_db_session" in request.fixturenames
        else None
    )
    undo = binding.bind(request.getfixturevalue("db_session"), async_session)
    try:
        yield
    finally:
        undo()
