"""Helpers shared by the suites of the layered isolation contract (test_layers,
test_escapes, test_threads, test_breaches): writing inner test modules over ``MODELS``,
checking that a run left every table empty, and running a project that might hang."""

from __future__ import annotations

import textwrap
import time
from xml.etree import ElementTree

import pytest
from sqlalchemy import create_engine, func, inspect, select, table
from sqlalchemy.pool import NullPool

from conftest import Project, output

#: What every inner test module over ``MODELS`` starts with.
HEADER = """
import pytest
from sqlalchemy import delete, event, func, insert, select, text
from sqlalchemy.exc import IntegrityError
import models
from models import Post, User

def emails(session):
    return sorted(session.scalars(select(User.email)))

def add(conn, email):
    conn.execute(insert(User), {"email": email})
"""

#: An inner test that runs last in its module (without randomising): each module ends
#: by checking that what its tests did is gone.
EMPTY_AFTER = """
def test_zz_next_test_starts_empty(db_session):
    assert emails(db_session) == []
    assert db_session.scalars(select(Post)).all() == []
"""


def module_source(body: str, *, footer: bool = True) -> str:
    parts = (HEADER, body, EMPTY_AFTER) if footer else (HEADER, body)
    return "\n".join(textwrap.dedent(part).strip() + "\n" for part in parts)


def write_tests(project: Project, name: str, body: str, *, footer: bool = True) -> None:
    """Write an inner test module: ``HEADER``, ``body`` and (by default) ``EMPTY_AFTER``."""
    project.write(name, module_source(body, footer=footer))


def table_counts(project: Project, name: str | None = None) -> dict[str, int]:
    """Rows in every table of a test database that a run kept (the plugin's own marker
    table aside)."""
    engine = create_engine(project.backend.test_db_url(project.path, name), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            names = [n for n in inspect(conn).get_table_names() if not n.startswith("_pytest")]
            return {n: conn.scalar(select(func.count()).select_from(table(n))) or 0 for n in names}
    finally:
        engine.dispose()


def assert_all_empty(project: Project, *names: str | None) -> None:
    """The kept test database(s) hold the schema and no row at all."""
    for name in names or (None,):
        counts = table_counts(project, name)
        assert {"users", "posts"} <= set(counts), counts
        assert counts == dict.fromkeys(counts, 0), (name, counts)


def worker_databases(project: Project) -> list[str]:
    """The per-worker test databases an xdist run kept."""
    base = project.test_db_name()
    names = sorted(n for n in project.databases() if n.startswith(base + "_gw"))
    assert names, project.databases()
    return names


def run_bounded(
    project: Project, *args: str, timeout: float = 90
) -> tuple[pytest.RunResult, float]:
    """Run the project in a subprocess that is killed after ``timeout`` seconds (a hang
    fails the outer test instead of hanging the suite); returns the result and the
    seconds it took."""
    start = time.monotonic()
    junit = project.path / "report.xml"
    junit.unlink(missing_ok=True)
    try:
        result = project.pytester.runpytest_subprocess(
            *project.backend.args(),
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            *args,
            timeout=timeout,
        )
    except project.pytester.TimeoutExpired:
        pytest.fail(f"the inner run hung: killed after {timeout} s", pytrace=False)
    return result, time.monotonic() - start


def junit_messages(project: Project) -> dict[str, str]:
    """For the last ``run_bounded``: the message of every failure or error, by test name
    (``name [error]`` for an error in set-up or teardown)."""
    messages: dict[str, str] = {}
    root = ElementTree.parse(project.path / "report.xml").getroot()
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            for element in case.findall(kind):
                key = case.get("name", "") + (" [error]" if kind == "error" else "")
                messages[key] = element.get("message", "")
    return messages


def assert_failed_by_plugin(result: pytest.RunResult, passed: int) -> None:
    """Exactly one inner test is failed by the plugin and ``passed`` others pass. The
    failure may be reported in the test's call (failed) or in its teardown (the call
    passed, then an error): the contract says the test fails, not in which phase."""
    outcomes = result.parseoutcomes()
    got = (outcomes.get("passed", 0), outcomes.get("failed", 0), outcomes.get("errors", 0))
    assert got in {(passed, 1, 0), (passed + 1, 0, 1)}, (got, output(result))


def crash_messages(result: pytest.RunResult) -> dict[str, str]:
    """For an in-process run: the exception line (``module.Class: message``, all of its
    lines) of every failed phase, by ``nodeid`` (``nodeid [setup]`` / ``[teardown]`` for
    those phases). Only the exception itself: not the source shown around it."""
    reprec = result.reprec  # type: ignore[attr-defined]
    messages: dict[str, str] = {}
    for report in reprec.getreports("pytest_runtest_logreport"):
        if report.failed:
            key = report.nodeid if report.when == "call" else f"{report.nodeid} [{report.when}]"
            crash = getattr(report.longrepr, "reprcrash", None)
            messages[key] = crash.message if crash is not None else str(report.longrepr)
    return messages


def only_crash(result: pytest.RunResult) -> tuple[str, str]:
    """The one failed phase of a run (its key, as in ``crash_messages``, and message)."""
    messages = crash_messages(result)
    assert len(messages) == 1, messages
    return next(iter(messages.items()))


def assert_isolation_error(message: str) -> None:
    """``message`` (as in ``crash_messages``) is a ``pytest_alchemy.IsolationError``."""
    kind = message.split(":", 1)[0]
    assert kind.startswith("pytest_alchemy."), message
    assert kind.endswith(".IsolationError"), message
