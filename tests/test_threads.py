"""Threads: request handlers on a thread pool each get their own routed connection and
all commit into the test's isolation, deterministically; a connection that a thread kept
from an earlier test is stopped, naming the thread, without touching the current test."""

from __future__ import annotations

import pytest

from conftest import Project
from isolation_support import (
    assert_all_empty,
    junit_messages,
    run_bounded,
    write_tests,
)

RUN = ("-p", "no:randomly", "--alchemy-reuse-db")

POOL_TESTS = """
from concurrent.futures import ThreadPoolExecutor

def handle_request(i):
    with models.SessionLocal() as session:
        session.add(User(email=f"user{i:02}@x"))
        session.commit()
        if i % 3 == 0:  # some handlers read as well
            assert f"user{i:02}@x" in emails(session)
    return i

EXPECTED = [f"user{i:02}@x" for i in range(20)]

@pytest.mark.parametrize("n", range(3))
def test_requests_on_a_thread_pool(db_session, n):
    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(handle_request, range(20))) == list(range(20))
    assert emails(db_session) == EXPECTED

@pytest.mark.parametrize("n", range(3))
def test_requests_on_a_thread_pool_without_fixtures(n):
    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(handle_request, range(20))) == list(range(20))
    with models.SessionLocal() as session:
        assert emails(session) == EXPECTED
"""


@pytest.mark.parametrize("attempt", range(3))
def test_thread_pool_handlers_commit_into_the_test(models_project: Project, attempt: int) -> None:
    write_tests(models_project, "test_pool.py", POOL_TESTS)
    result, _seconds = run_bounded(models_project, *RUN, timeout=60)
    result.assert_outcomes(passed=7)
    assert_all_empty(models_project)


KEEPER_TESTS = """
import queue
import threading

REQUESTS = queue.Queue()
RESULTS = queue.Queue()

def keeper():
    # A worker thread that opens a connection and keeps it for later work.
    conn = models.engine.connect()
    RESULTS.put("connected")
    email = REQUESTS.get(timeout=30)
    try:
        add(conn, email)
        conn.commit()
        RESULTS.put(None)
    except Exception as exc:
        RESULTS.put(exc)
    finally:
        try:
            conn.close()
        except Exception:
            pass

def test_1_thread_connects(db_session):
    threading.Thread(target=keeper, name="report-worker", daemon=True).start()
    assert RESULTS.get(timeout=30) == "connected"
    db_session.add(User(email="t1@x"))
    db_session.commit()

def test_2_thread_uses_the_old_connection(db_session):
    from pytest_alchemy import IsolationError

    db_session.add(User(email="t2@x"))
    db_session.commit()
    REQUESTS.put("late@x")
    exc = RESULTS.get(timeout=30)
    assert isinstance(exc, IsolationError), repr(exc)
    assert "report-worker" in str(exc), str(exc)
    assert emails(db_session) == ["t2@x"]
    with models.SessionLocal() as session:
        assert emails(session) == ["t2@x"]
"""


def test_connection_kept_by_a_thread_is_stopped_in_the_next_test(
    models_project: Project,
) -> None:
    write_tests(models_project, "test_keeper.py", KEEPER_TESTS)
    result, _seconds = run_bounded(models_project, *RUN, timeout=90)
    messages = junit_messages(models_project)
    result.assert_outcomes(passed=3)
    assert messages == {}
    assert_all_empty(models_project)


ORPHAN_TESTS = """
import functools
import threading
import time
from conftest import POOL

STOP = threading.Event()
ERRORS = []

def writer():
    for i in range(50):
        if STOP.is_set():
            return
        try:
            with models.SessionLocal() as session:
                session.add(User(email=f"bg{i}@x"))
                session.commit()
        except Exception as exc:
            ERRORS.append(exc)
            return
        time.sleep(0.01)

def pooled_write(email):
    with models.SessionLocal() as session:
        session.add(User(email=email))
        session.commit()

def test_1_starts_a_thread_and_returns(db_session):
    POOL.submit(pooled_write, "pool-1@x").result()  # the pool's worker starts here
    # (a partial, as real code often passes, is the project's code all the same)
    target = functools.partial(writer)
    threading.Thread(target=target, name="stray-writer", daemon=True).start()
    time.sleep(0.05)

def test_2_is_not_written_into(db_session):
    time.sleep(0.3)
    STOP.set()
    assert emails(db_session) == []
    assert len(ERRORS) == 1, ERRORS
    message = str(ERRORS[0])
    assert type(ERRORS[0]).__name__ == "IsolationError", repr(ERRORS[0])
    assert "stray-writer" in message and "test_1_starts_a_thread_and_returns" in message

def test_3_a_pool_serves_every_test(db_session):
    POOL.submit(pooled_write, "pool-3@x").result()  # the same worker, a later test
    assert emails(db_session) == ["pool-3@x"]
"""

ORPHAN_CONFTEST = """
from concurrent.futures import ThreadPoolExecutor
import pytest

POOL = ThreadPoolExecutor(1)

@pytest.fixture(scope="session", autouse=True)
def _pool():
    yield
    POOL.shutdown()
"""


def test_a_thread_that_outlives_its_test_cannot_write_into_the_next(
    models_project: Project,
) -> None:
    models_project.write("conftest.py", ORPHAN_CONFTEST)
    write_tests(models_project, "test_orphan.py", ORPHAN_TESTS)
    result, _seconds = run_bounded(models_project, *RUN, timeout=90)
    result.assert_outcomes(passed=4)
    assert_all_empty(models_project)


LIBRARY_THREAD = """
import logging
import logging.handlers
import queue

class DatabaseHandler(logging.Handler):
    def emit(self, record):
        with models.SessionLocal() as session:
            session.add(User(email=record.getMessage()))
            session.commit()

LOG_QUEUE = queue.Queue()
LISTENER = None

def audit(message):
    # The application starts logging's listener thread on first use, in some test.
    global LISTENER
    if LISTENER is None:
        LISTENER = logging.handlers.QueueListener(LOG_QUEUE, DatabaseHandler())
        LISTENER.start()
    LOG_QUEUE.put(logging.makeLogRecord({"msg": message}))

def flush():
    LISTENER.stop()
    LISTENER.start()

def test_1_first_audit(db_session):
    audit("one@x")
    flush()
    assert emails(db_session) == ["one@x"]

def test_2_the_listener_serves_this_test_too(db_session):
    audit("two@x")
    flush()
    assert emails(db_session) == ["two@x"]
    LISTENER.stop()
"""


def test_a_library_thread_started_in_one_test_serves_the_next(models_project: Project) -> None:
    write_tests(models_project, "test_library_thread.py", LIBRARY_THREAD)
    result, _seconds = run_bounded(models_project, *RUN, timeout=90)
    result.assert_outcomes(passed=3)
    assert_all_empty(models_project)
