"""What cannot be isolated is refused, precisely and at once, and never hangs: MariaDB
statements that commit implicitly, a rollback that would undo a later commit (told with
the name of what rolled back), and a lock held by the test against a separate driver
connection (``alchemy_lock_timeout``). Each inner run is a subprocess killed after a
bound, so that a lock or a hang of today's code cannot stop the suite."""

from __future__ import annotations

import pytest

from conftest import Project
from isolation_support import (
    assert_all_empty,
    assert_failed_by_plugin,
    assert_isolation_error,
    junit_messages,
    run_bounded,
    write_tests,
)

RUN = ("-p", "no:randomly", "--alchemy-reuse-db")


# -- H. MariaDB statements that commit implicitly ---------------------------------------

IMPLICIT = {
    "create_index": ("CREATE INDEX ix ON users (email)", "CREATE INDEX"),
    "truncate": ("TRUNCATE TABLE posts", "TRUNCATE"),
    "lock_tables": ("LOCK TABLES users WRITE", "LOCK TABLES"),
}


@pytest.mark.backends("mariadb")
@pytest.mark.parametrize("case", IMPLICIT)
def test_statement_that_commits_implicitly_is_refused(models_project: Project, case: str) -> None:
    statement, words = IMPLICIT[case]
    write_tests(
        models_project,
        "test_implicit.py",
        f"""
        def test_implicit_commit(db_session):
            db_session.add(User(email="session@x"))
            db_session.commit()
            with models.engine.connect() as conn:
                add(conn, "conn@x")
                conn.exec_driver_sql({statement!r})
                conn.commit()

        def test_temporary_table(db_session):
            db_session.add(User(email="temp@x"))
            db_session.flush()
            with models.engine.connect() as conn:
                conn.exec_driver_sql("CREATE TEMPORARY TABLE scratch (id INT)")
                conn.exec_driver_sql("INSERT INTO scratch (id) VALUES (1), (2)")
                assert conn.exec_driver_sql("SELECT COUNT(*) FROM scratch").scalar() == 2
                conn.exec_driver_sql("DROP TEMPORARY TABLE scratch")
                conn.commit()
            assert emails(db_session) == ["temp@x"]
        """,
    )
    for _ in range(2):  # the second run on the kept database: nothing was left
        result, _seconds = run_bounded(models_project, *RUN, timeout=60)
        result.assert_outcomes(passed=2, failed=1)
        messages = junit_messages(models_project)
        assert set(messages) == {"test_implicit_commit"}, messages
        message = messages["test_implicit_commit"]
        assert_isolation_error(message)
        assert words in message, message
        assert "implicit" in message.lower(), message
        assert_all_empty(models_project)
        indexes = models_project.query(
            "SELECT COUNT(*) FROM information_schema.statistics "
            "WHERE table_schema = DATABASE() AND index_name = 'ix'"
        )
        assert indexes == [(0,)]


# -- I. refusals that name the right culprit ---------------------------------------------


def test_app_error_after_a_nested_commit_when_outer_wrote_nothing(models_project: Project) -> None:
    write_tests(
        models_project,
        "test_nested.py",
        """
        def test_outer_wrote_nothing(db_session):
            with pytest.raises(ValueError, match="^app error$") as info:
                with models.engine.begin() as outer:
                    assert outer.scalar(select(func.count()).select_from(User)) == 0
                    with models.engine.begin() as inner:
                        add(inner, "inner@x")
                    raise ValueError("app error")
            assert type(info.value) is ValueError
            assert emails(db_session) == ["inner@x"]
            with models.SessionLocal() as session:
                assert emails(session) == ["inner@x"]
        """,
    )
    result, _seconds = run_bounded(models_project, *RUN, timeout=60)
    result.assert_outcomes(passed=2)
    assert_all_empty(models_project)


def test_app_error_after_a_nested_commit_when_outer_wrote(models_project: Project) -> None:
    write_tests(
        models_project,
        "test_nested.py",
        """
        SEEN = []

        def test_outer_wrote_first(db_session):
            with pytest.raises(ValueError, match="^app error$") as info:
                with models.engine.begin() as outer:
                    add(outer, "outer@x")
                    with models.engine.begin() as inner:
                        add(inner, "inner@x")
                    raise ValueError("app error")
            assert type(info.value) is ValueError  # the application's error, unchanged
            SEEN.append("reached")

        def test_the_error_reached_the_test():
            assert SEEN == ["reached"]
        """,
    )
    result, _seconds = run_bounded(models_project, *RUN, timeout=60)
    assert_failed_by_plugin(result, passed=2)
    messages = junit_messages(models_project)
    assert len(messages) == 1 and next(iter(messages)).startswith("test_outer_wrote_first"), (
        messages
    )
    message = next(iter(messages.values()))
    assert "IsolationError" in message, message
    lowered = message.lower()
    assert "roll back" in lowered or "rollback" in lowered or "rolled back" in lowered, message
    assert "later" in lowered and "commit" in lowered, message
    assert_all_empty(models_project)


def test_db_session_rollback_after_an_app_commit_names_db_session(
    models_project: Project,
) -> None:
    write_tests(
        models_project,
        "test_db_session.py",
        """
        def test_db_session_rollback(db_session):
            from pytest_alchemy import IsolationError

            db_session.add(User(email="a@x"))
            db_session.flush()
            with models.SessionLocal() as session:
                session.add(User(email="b@x"))
                session.commit()
            with pytest.raises(IsolationError) as info:
                db_session.rollback()
            message = str(info.value)
            assert "db_session" in message, message
            assert "a connection of an application engine" not in message, message
        """,
    )
    result, _seconds = run_bounded(models_project, *RUN, timeout=60)
    result.assert_outcomes(passed=2)
    assert_all_empty(models_project)


# -- J. a lock the test holds does not make a separate connection wait forever -----------


def short_lock_timeout(project: Project) -> None:
    """Add ``alchemy_lock_timeout = 2`` to the project's pytest.ini."""
    ini = project.path / "pytest.ini"
    ini.write_text(ini.read_text().rstrip("\n") + "\nalchemy_lock_timeout = 2\n")


CONNECT = {
    "postgresql": (
        "import psycopg",
        "psycopg.connect(host=url.host, port=url.port, user=url.username, "
        "dbname=url.database, autocommit=True)",
    ),
    "mariadb": (
        "import pymysql",
        "pymysql.connect(host=url.host, port=url.port, user=url.username, "
        "database=url.database, autocommit=True)",
    ),
}


# PostgreSQL only: there alchemy_lock_timeout is the test database's own lock_timeout, so
# it bounds every connection. MariaDB has no per-database setting: another connection waits
# the server's innodb_lock_wait_timeout (50 s by default), which the plugin may not change.
@pytest.mark.backends("postgresql")
def test_separate_connection_waits_no_longer_than_the_lock_timeout(
    models_project: Project,
) -> None:
    short_lock_timeout(models_project)
    imports, connect = CONNECT[models_project.backend.name]
    write_tests(
        models_project,
        "test_wait.py",
        f"""
        {imports}

        def test_duplicate_from_a_separate_connection(db_session, db_engine):
            db_session.add(User(email="dup@x"))
            db_session.flush()
            url = db_engine.url
            other = {connect}
            try:
                other.cursor().execute("INSERT INTO users (email) VALUES ('dup@x')")
            finally:
                other.close()
        """,
    )
    # 2 s of waiting and the run's set-up: well under 30 s (PostgreSQL waits for ever by
    # default).
    result, seconds = run_bounded(models_project, *RUN, timeout=90)
    assert seconds < 30, seconds
    result.assert_outcomes(passed=1, failed=1)
    messages = junit_messages(models_project)
    assert set(messages) == {"test_duplicate_from_a_separate_connection"}, messages
    assert "lock" in messages["test_duplicate_from_a_separate_connection"].lower(), messages
    assert_all_empty(models_project)


#: A second connection that inserts a key and holds it, uncommitted, while the test runs.
HOLDER = {
    "sqlite": ("import sqlite3", "sqlite3.connect(url.database, isolation_level=None)"),
    **CONNECT,
}


def test_the_tests_own_connection_waits_no_longer_than_the_lock_timeout(
    models_project: Project,
) -> None:
    short_lock_timeout(models_project)
    imports, connect = HOLDER[models_project.backend.name]
    write_tests(
        models_project,
        "test_blocked.py",
        f"""
        {imports}

        def test_blocked_by_another_connection(db_session, db_engine):
            url = db_engine.url
            other = {connect}
            try:
                cursor = other.cursor()
                cursor.execute("BEGIN")
                cursor.execute("INSERT INTO users (email) VALUES ('held@x')")
                db_session.add(User(email="held@x"))
                db_session.flush()  # waits for the other connection's lock
            finally:
                other.rollback()
                other.close()
        """,
    )
    result, seconds = run_bounded(models_project, *RUN, timeout=90)
    assert seconds < 30, seconds
    result.assert_outcomes(passed=1, failed=1)
    messages = junit_messages(models_project)
    assert set(messages) == {"test_blocked_by_another_connection"}, messages
    assert "lock" in messages["test_blocked_by_another_connection"].lower(), messages
    assert_all_empty(models_project)


# -- a statement that commits by itself anyway: detected, told, and the database rebuilt --

BREACH_CONFTEST = """
from sqlalchemy import DDL, event
import models

# A stored procedure that commits: nothing in the CALL says so.
event.listen(
    models.Base.metadata,
    "after_create",
    DDL(
        "CREATE PROCEDURE sneaky_commit() BEGIN "
        "INSERT INTO posts_log (note) VALUES ('sneaky'); COMMIT; END"
    ),
)
event.listen(
    models.Base.metadata,
    "before_create",
    DDL("CREATE TABLE posts_log (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20))"),
)
"""


@pytest.mark.backends("mariadb")
def test_a_commit_inside_a_procedure_is_a_breach_and_the_database_is_rebuilt(
    models_project: Project,
) -> None:
    models_project.write("conftest.py", BREACH_CONFTEST)
    write_tests(
        models_project,
        "test_breach.py",
        """
        @pytest.fixture(scope="module")
        def seeded():
            with models.engine.begin() as conn:
                add(conn, "module@x")

        def test_breach(db_session, seeded):
            db_session.add(User(email="breach@x"))
            db_session.commit()
            with models.engine.connect() as conn:
                conn.exec_driver_sql("CALL sneaky_commit()")

        def test_after_without_the_module_rows(db_session):
            assert emails(db_session) == []

        def test_after_with_the_module_rows(db_session, seeded):
            assert emails(db_session) == ["module@x"]
        """,
        footer=False,
    )
    for run in range(2):
        result, _seconds = run_bounded(models_project, *RUN, timeout=60)
        result.assert_outcomes(passed=1, failed=1, errors=1)
        messages = junit_messages(models_project)
        assert set(messages) == {
            "test_breach",
            "test_after_with_the_module_rows [error]",
        }, messages
        assert "CALL sneaky_commit()" in messages["test_breach"], messages
        assert "committed implicitly" in messages["test_breach"], messages
        lost = messages["test_after_with_the_module_rows [error]"]
        assert "rows of module-scoped fixture 'seeded' were lost" in lost, lost
        # What the breach committed is gone: the database was rebuilt before its next use.
        assert_all_empty(models_project)
        assert models_project.query("SELECT COUNT(*) FROM posts_log") == [(0,)]
        summary = "rebuilt (a test committed to it for real)"
        assert summary in result.stdout.str(), (run, result.stdout.str())
