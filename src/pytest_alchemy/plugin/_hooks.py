"""Hooks that tell the isolation layer which scope pytest is in, end each scope's layer
when pytest tears the scope down, and report isolation problems in the test that
caused them."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from .._errors import IsolationError
from ..isolation import Scope
from ._scopes import Node, fixture_label
from ._state import STATE, RunState


@contextmanager
def _inside(
    config: pytest.Config,
    node: Node,
    who: str,
    *,
    ending: Scope | None = None,
    fixture: str | None = None,
) -> Iterator[None]:
    state = config.stash.get(STATE, None)
    if state is None:
        yield
        return
    state.scopes.push(node, who, ending=ending, fixture=fixture)
    try:
        yield
    finally:
        state.scopes.pop()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    label = fixture_label(fixturedef.scope, fixturedef.argname)
    with _inside(request.config, request.node, label, fixture=fixturedef.argname):
        try:
            return (yield)
        except BaseException:
            _undo_failed_setup(fixturedef, request)
            raise


def _undo_failed_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> None:
    """A wider-scoped fixture whose set-up failed after writing: its rows would stay for
    the rest of its scope (pytest caches the failure), so they are undone now."""
    state = request.config.stash.get(STATE, None)
    if state is None or state.isolation is None or fixturedef.scope == "function":
        return
    scope = state.scopes.existing(request.node)
    if scope is not None:
        state.isolation.restart_scope(scope, fixturedef.argname, "set up and failed")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    # Between its phases (and for other threads meanwhile) statements belong to the test.
    with _inside(item.config, item, f"test {item.nodeid}"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    state = item.config.stash.get(STATE, None)
    lost = state.scopes.lost_for(item) if state is not None else None
    if lost is not None:
        raise IsolationError(f"pytest-alchemy: test {item.nodeid} cannot run: {lost}")
    with _inside(item.config, item, f"test {item.nodeid}"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _inside(item.config, item, f"test {item.nodeid}"):
        try:
            result = yield
        except BaseException:
            _report_deferred(item, failed=True)
            raise
        _report_deferred(item, failed=False)
        return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    state = item.config.stash.get(STATE, None)
    ended = state.scopes.ending(item, nextitem) if state is not None else []
    who = f"the teardown of test {item.nodeid}"
    with _inside(item.config, item, who, ending=ended[-1] if ended else None):
        try:
            result = yield
        finally:
            if state is not None:
                _end_scopes(state, ended)
    _report_deferred(item, failed=False)
    return result


def pytest_fixture_post_finalizer(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> None:
    """A wider-scoped fixture torn down while its scope goes on (pytest moving to its
    next param): what it wrote in the scope is undone before the next param is set up."""
    state = request.config.stash.get(STATE, None)
    if state is None or state.isolation is None or fixturedef.scope == "function":
        return
    if state.scopes.tearing_down:
        return  # the scope ends: pytest_runtest_teardown rolls it back
    scope = state.scopes.existing(request.node)
    if scope is not None:
        state.isolation.restart_scope(scope, fixturedef.argname)


def _end_scopes(state: RunState, ended: list[Scope]) -> None:
    """Drop the listed scoped_sessions' sessions, then roll back each ended scope's
    layer, innermost first."""
    isolation = state.isolation
    try:
        if isolation is not None:
            for factory in isolation.scoped:
                factory.remove()
            for scope in ended:
                isolation.end_scope(scope)
    finally:
        for scope in ended:
            scope.alive = False
        state.scopes.forget(ended)


def _report_deferred(item: pytest.Item, *, failed: bool) -> None:
    """Isolation problems found while an exception was on its way out (so as not to
    replace it): a failure of the test, or a report section when it failed already."""
    state = item.config.stash.get(STATE, None)
    isolation = state.isolation if state is not None else None
    if isolation is None:
        return
    errors = isolation.take_deferred()
    if not errors:
        return
    text = "\n\n".join(str(error) for error in errors)
    if failed:
        item.add_report_section("call", "pytest-alchemy isolation", text)
        return
    raise IsolationError(text)
