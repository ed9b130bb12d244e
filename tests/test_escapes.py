"""Every way of writing to the test database is isolated: tests that ask for no fixture,
a routed engine's ``raw_connection()`` and driver cursors, SQL functions that write,
``db_connection.commit()``; an engine the plugin does not know is stopped (or routed,
once listed); the application's listeners see the very Connection objects it holds, and
SQLAlchemy-Continuum versions rows as in production."""

from __future__ import annotations

import textwrap

import pytest

from conftest import MODELS, Project
from isolation_support import (
    assert_all_empty,
    assert_isolation_error,
    crash_messages,
    only_crash,
    run_bounded,
    write_tests,
)

RUN = ("-p", "no:randomly", "--alchemy-reuse-db")


def run_and_check_empty(project: Project, passed: int) -> pytest.RunResult:
    """Run in order, keeping the database: every test passes and no row is left; a
    second run (same unique keys again) passes too."""
    for _ in range(2):
        result = project.run(*RUN)
        result.assert_outcomes(passed=passed)
        assert_all_empty(project)
    return result


# -- C. a test that asks for no database fixture is isolated too -------------------------


def test_test_without_fixtures_is_isolated(models_project: Project) -> None:
    write_tests(
        models_project,
        "test_plain.py",
        """
        def register(email):
            # Application code: commits through the app's engine and sessionmaker.
            with models.engine.begin() as conn:
                add(conn, email)
            with models.SessionLocal() as session:
                session.add(Post(title="hello", author=session.scalars(
                    select(User).where(User.email == email)).one()))
                session.commit()

        def test_app_commits_without_fixtures():
            register("plain@x")
            with models.SessionLocal() as session:
                assert emails(session) == ["plain@x"]
                assert session.scalars(select(Post.title)).all() == ["hello"]

        def test_app_commits_again_without_fixtures():
            register("plain@x")  # the same unique email: the first test's row is gone
            with models.engine.connect() as conn:
                assert conn.scalars(select(User.email)).all() == ["plain@x"]
        """,
    )
    run_and_check_empty(models_project, passed=3)


# -- D. raw_connection() and driver cursors of a routed engine ----------------------------


def test_raw_connection_is_routed(models_project: Project) -> None:
    write_tests(
        models_project,
        "test_raw.py",
        """
        import contextlib

        @contextlib.contextmanager
        def raw_insert(email):
            raw = models.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute(f"INSERT INTO users (email) VALUES ('{email}')")
                cursor.close()
                yield raw
            finally:
                raw.close()

        def test_raw_commit(db_session):
            with raw_insert("raw@x") as raw:
                raw.commit()
            assert emails(db_session) == ["raw@x"]

        def test_raw_commit_again(db_session):
            with raw_insert("raw@x") as raw:  # the same unique email: the first one is gone
                raw.commit()
            assert emails(db_session) == ["raw@x"]
            with models.SessionLocal() as session:
                assert emails(session) == ["raw@x"]

        def test_raw_rollback(db_session):
            with raw_insert("rolled-back@x") as raw:
                raw.rollback()
                assert emails(db_session) == []
            assert emails(db_session) == []

        def test_raw_close_without_commit(db_session):
            with raw_insert("closed@x"):
                pass
            assert emails(db_session) == []
        """,
    )
    # In a subprocess: today the raw connection is a real one, and a lock it keeps on
    # MariaDB would stop the database from being dropped.
    for _ in range(2):
        result, _seconds = run_bounded(models_project, *RUN, timeout=60)
        result.assert_outcomes(passed=5)
        assert_all_empty(models_project)


def test_raw_connection_conflict_fails_at_once(models_project: Project) -> None:
    # Today on PostgreSQL the raw connection waits forever for the test's lock: the inner
    # run is a subprocess killed after a bound.
    write_tests(
        models_project,
        "test_raw_conflict.py",
        """
        def test_raw_duplicate_of_a_flushed_row(db_session):
            db_session.add(User(email="dup@x"))
            db_session.flush()
            raw = models.engine.raw_connection()
            try:
                cursor = raw.cursor()
                with pytest.raises(Exception) as info:
                    cursor.execute("INSERT INTO users (email) VALUES ('dup@x')")
                kinds = [k.__name__ for k in type(info.value).__mro__]
                assert "IntegrityError" in kinds, repr(info.value)
                raw.rollback()
            finally:
                raw.close()
        """,
    )
    result, seconds = run_bounded(models_project, *RUN, timeout=45)
    result.assert_outcomes(passed=2)
    assert seconds < 40, seconds
    assert_all_empty(models_project)


def test_driver_cursor_of_a_connection_rolls_back(models_project: Project) -> None:
    write_tests(
        models_project,
        "test_driver_cursor.py",
        """
        def test_driver_cursor_then_rollback(db_session):
            with models.engine.connect() as conn:
                cursor = conn.connection.cursor()
                cursor.execute("INSERT INTO users (email) VALUES ('cursor@x')")
                cursor.close()
                assert conn.scalar(select(func.count()).select_from(User)) == 1
                conn.rollback()
                assert conn.scalar(select(func.count()).select_from(User)) == 0
            assert emails(db_session) == []

        def test_driver_cursor_then_commit(db_session):
            with models.engine.connect() as conn:
                cursor = conn.connection.cursor()
                cursor.execute("INSERT INTO users (email) VALUES ('cursor@x')")
                cursor.close()
                # The Connection began nothing (the driver cursor bypasses it), so its
                # commit() would do nothing, in production too: commit the driver's.
                conn.connection.commit()
            assert emails(db_session) == ["cursor@x"]
        """,
    )
    run_and_check_empty(models_project, passed=3)


#: A SQL function that inserts a user, created with the schema.
ADD_USER = {
    "postgresql": (
        "CREATE FUNCTION add_user(e varchar) RETURNS integer "
        "AS $$ INSERT INTO users (email) VALUES (e) RETURNING id $$ LANGUAGE sql"
    ),
    "mariadb": (
        "CREATE FUNCTION add_user(e VARCHAR(100)) RETURNS INT MODIFIES SQL DATA "
        "BEGIN INSERT INTO users (email) VALUES (e); RETURN LAST_INSERT_ID(); END"
    ),
}


@pytest.mark.backends("postgresql", "mariadb")
def test_sql_function_that_writes_is_rolled_back(models_project: Project) -> None:
    ddl = ADD_USER[models_project.backend.name]
    models_project.write(
        "models.py",
        MODELS
        + textwrap.indent(
            f"\nfrom sqlalchemy import DDL, event\n"
            f"event.listen(Base.metadata, 'after_create', DDL({ddl!r}))\n",
            "    ",
        ),
    )
    write_tests(
        models_project,
        "test_function.py",
        """
        def test_function_then_rollback(db_session):
            with models.engine.connect() as conn:
                conn.execute(text("SELECT add_user('fn@x')"))
                assert conn.scalars(select(User.email)).all() == ["fn@x"]
                conn.rollback()
                assert conn.scalars(select(User.email)).all() == []
            assert emails(db_session) == []

        def test_function_then_commit(db_session):
            with models.engine.connect() as conn:
                conn.execute(text("SELECT add_user('fn@x')"))
                conn.commit()
            assert emails(db_session) == ["fn@x"]

        def test_function_without_fixtures():
            with models.engine.begin() as conn:
                conn.execute(text("SELECT add_user('fn@x')"))
        """,
    )
    run_and_check_empty(models_project, passed=4)


# -- K. db_connection.commit() ends a savepoint of the test, nothing more ----------------


def test_db_connection_commit_is_allowed(models_project: Project) -> None:
    write_tests(
        models_project,
        "test_db_connection.py",
        """
        def count(conn):
            return conn.scalar(select(func.count()).select_from(User))

        def test_commit(db_connection):
            add(db_connection, "k@x")
            db_connection.commit()
            assert count(db_connection) == 1
            add(db_connection, "k2@x")
            db_connection.commit()
            assert count(db_connection) == 2

        def test_commit_then_rollback(db_connection, db_session):
            add(db_connection, "k@x")
            db_connection.commit()
            add(db_connection, "k2@x")
            db_connection.rollback()
            assert emails(db_session) == ["k@x"]
        """,
    )
    run_and_check_empty(models_project, passed=3)


# -- E. an engine the plugin does not know, made lazily during the run -------------------

LAZY_MODELS = (
    textwrap.dedent(MODELS)
    + """
import functools

@functools.lru_cache
def get_engine():
    return create_engine(os.environ["APP_DATABASE_URL"])
"""
)

LAZY_CONFTEST = """
import pytest
import models

@pytest.fixture(scope="session", autouse=True)
def dispose_lazy_engine():
    yield
    if models.get_engine.cache_info().currsize:
        models.get_engine().dispose()
"""

LAZY_TESTS = """
def write_through_lazy_engine(email):
    with models.get_engine().begin() as conn:
        add(conn, email)

def test_lazy_engine(db_session):
    write_through_lazy_engine("lazy@x")
    assert emails(db_session) == ["lazy@x"]

def test_lazy_engine_without_fixtures():
    write_through_lazy_engine("lazy@x")
"""


def test_unknown_engine_is_stopped_and_named(project: Project) -> None:
    project.write("models.py", LAZY_MODELS)
    project.write("conftest.py", LAZY_CONFTEST)
    project.ini(alchemy_metadata="models:Base", alchemy_url_env="APP_DATABASE_URL")
    write_tests(project, "test_lazy.py", LAZY_TESTS)
    url = project.backend.test_db_url(project.path)
    result = project.run(*RUN)
    result.assert_outcomes(passed=1, failed=2)
    messages = crash_messages(result)
    assert set(messages) == {
        "test_lazy.py::test_lazy_engine",
        "test_lazy.py::test_lazy_engine_without_fixtures",
    }, messages
    for message in messages.values():
        assert_isolation_error(message)
        assert url in message  # no password in these URLs: shown as is
        assert "alchemy_engines" in message
    assert_all_empty(project)


def test_unknown_engine_is_stopped_in_the_run_s_first_test_without_fixtures(
    project: Project,
) -> None:
    # With alchemy_url_env the application reaches the test database by itself, before
    # any test asked for a database fixture: the guard is on from the first test.
    project.write("models.py", LAZY_MODELS)
    project.write("conftest.py", LAZY_CONFTEST)
    project.ini(alchemy_metadata="models:Base", alchemy_url_env="APP_DATABASE_URL")
    first, second = LAZY_TESTS.split("def test_lazy_engine_without_fixtures():")
    write_tests(project, "test_lazy.py", "def test_0_first():" + second + first)
    result = project.run(*RUN)
    result.assert_outcomes(passed=1, failed=2)
    messages = crash_messages(result)
    assert set(messages) == {"test_lazy.py::test_0_first", "test_lazy.py::test_lazy_engine"}
    for message in messages.values():
        assert_isolation_error(message)
        assert "alchemy_engines" in message


def test_lazy_engine_listed_as_a_callable_is_routed(project: Project) -> None:
    project.write("models.py", LAZY_MODELS)
    project.write("conftest.py", LAZY_CONFTEST)
    project.ini(
        alchemy_metadata="models:Base",
        alchemy_engines="models:get_engine",
        alchemy_url_env="APP_DATABASE_URL",
    )
    write_tests(project, "test_lazy.py", LAZY_TESTS)
    run_and_check_empty(project, passed=3)


# -- F. listeners see the application's own Connection objects ---------------------------

LISTENERS = """
EVENTS = []

@event.listens_for(engine, "before_execute")
def _before_execute(conn, clauseelement, multiparams, params, execution_options):
    EVENTS.append(("before_execute", conn))

@event.listens_for(engine, "before_cursor_execute")
def _before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
    EVENTS.append(("before_cursor_execute", conn))

for _name in ("begin", "commit", "rollback"):
    event.listen(engine, _name, lambda conn, _name=_name: EVENTS.append((_name, conn)))
"""


def test_listeners_receive_the_applications_connection(models_project: Project) -> None:
    models_project.write(
        "models.py",
        MODELS + textwrap.indent("\nfrom sqlalchemy import event\n" + LISTENERS, "    "),
    )
    write_tests(
        models_project,
        "test_identity.py",
        """
        def kinds(conn):
            assert [c for _, c in models.EVENTS if c is not conn] == [], models.EVENTS
            return [k for k, _ in models.EVENTS if k in ("begin", "commit", "rollback")]

        def test_engine_connect(db_session):
            models.EVENTS.clear()
            with models.engine.connect() as conn:
                add(conn, "a@x")
                conn.commit()
                conn.execute(select(User.id))
                conn.rollback()
            assert ("before_execute", conn) in models.EVENTS
            assert ("before_cursor_execute", conn) in models.EVENTS
            assert kinds(conn) == ["begin", "commit", "begin", "rollback"]

        def test_engine_begin(db_session):
            models.EVENTS.clear()
            with models.engine.begin() as conn:
                add(conn, "b@x")
            assert ("before_cursor_execute", conn) in models.EVENTS
            assert kinds(conn) == ["begin", "commit"]

        def test_session_connection(db_session):
            models.EVENTS.clear()
            with models.SessionLocal() as session:
                conn = session.connection()
                session.add(User(email="c@x"))
                session.commit()
            assert ("before_cursor_execute", conn) in models.EVENTS
            assert kinds(conn) == ["begin", "commit"]

        def test_without_fixtures():
            models.EVENTS.clear()
            with models.engine.connect() as conn:
                add(conn, "d@x")
                conn.rollback()
            assert ("before_execute", conn) in models.EVENTS
            assert kinds(conn) == ["begin", "rollback"]
        """,
    )
    run_and_check_empty(models_project, passed=5)


CONTINUUM_MODELS = (
    "from sqlalchemy_continuum import make_versioned\n"
    "make_versioned(user_cls=None)\n"
    + textwrap.dedent(MODELS)
    + """
from sqlalchemy.orm import configure_mappers

class Article(Base):
    __tablename__ = "articles"
    __versioned__ = {}
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))

configure_mappers()
"""
)


def test_sqlalchemy_continuum_versions_rows(models_project: Project) -> None:
    pytest.importorskip("sqlalchemy_continuum")
    models_project.write("models.py", CONTINUUM_MODELS)
    write_tests(
        models_project,
        "test_continuum.py",
        """
        from sqlalchemy_continuum import version_class
        from models import Article

        def edit(session):
            article = Article(name="v1")
            session.add(article)
            session.commit()
            article.name = "v2"
            session.commit()
            assert article.versions.count() == 2
            assert [v.name for v in article.versions] == ["v1", "v2"]

        def test_app_session(db_session):
            with models.SessionLocal() as session:
                edit(session)
            assert db_session.scalars(select(Article.name)).all() == ["v2"]

        def test_app_session_without_fixtures():
            with models.SessionLocal() as session:
                edit(session)

        def test_db_session(db_session):
            edit(db_session)

        def test_zz_no_versions_left(db_session):
            assert db_session.scalars(select(Article)).all() == []
            assert db_session.scalars(select(version_class(Article))).all() == []
        """,
    )
    # In a subprocess: make_versioned() adds listeners to SQLAlchemy's classes for good.
    for _ in range(2):
        result, _seconds = run_bounded(models_project, *RUN)
        result.assert_outcomes(passed=5)
        counts = models_project.backend.query(
            models_project.path, "SELECT COUNT(*) FROM articles_version"
        )
        assert counts == [(0,)]
        assert_all_empty(models_project)


def test_isolation_error_is_an_alchemy_error() -> None:
    import pytest_alchemy

    assert issubclass(pytest_alchemy.IsolationError, pytest_alchemy.AlchemyError)
    assert "IsolationError" in pytest_alchemy.__all__


# -- G. transaction control in every form a driver or an application sends it ------------

COMMIT_AND_CHAIN = """
        def test_commit_and_chain(db_session):
            with models.engine.connect() as conn:
                add(conn, "chain@x")
                conn.exec_driver_sql("COMMIT AND CHAIN")
                add(conn, "after-chain@x")
                conn.rollback()
            assert emails(db_session) == ["chain@x"]

        def test_commit_and_chain_with_a_comment(db_session):
            with models.engine.connect() as conn:
                add(conn, "chain2@x")
                conn.exec_driver_sql("/* done */ COMMIT AND CHAIN -- keep going")
                add(conn, "after-chain2@x")
                conn.rollback()
            assert emails(db_session) == ["chain2@x"]
"""

#: Per backend, ways application code ends or begins transactions below SQLAlchemy; each
#: inner test writes, then does it, then rolls back or closes.
DRIVER_CONTROL = {
    "postgresql": COMMIT_AND_CHAIN
    + """

        def test_psycopg_execute_shortcut_then_rollback(db_session):
            raw = models.engine.raw_connection()
            raw.driver_connection.execute("INSERT INTO users (email) VALUES ('drv@x')")
            assert emails(db_session) == ["drv@x"]
            raw.rollback()
            raw.close()
            assert emails(db_session) == []

        def test_copy_then_rollback(db_session):
            raw = models.engine.raw_connection()
            cursor = raw.cursor()
            with cursor.copy("COPY users (email) FROM STDIN") as copy:
                copy.write_row(("copied@x",))
            raw.rollback()
            raw.close()
            assert emails(db_session) == []

        def test_several_statements_with_a_commit_are_refused(db_session):
            from pytest_alchemy import IsolationError

            with models.engine.connect() as conn:
                with pytest.raises(IsolationError, match="several statements"):
                    conn.exec_driver_sql("INSERT INTO users (email) VALUES ('m@x'); COMMIT")
            assert emails(db_session) == []
    """,
    "mariadb": COMMIT_AND_CHAIN
    + """

        def test_pymysql_begin_and_query(db_session):
            raw = models.engine.raw_connection()
            raw.begin()
            raw.driver_connection.query("INSERT INTO users (email) VALUES ('query@x')")
            assert emails(db_session) == ["query@x"]
            raw.rollback()
            raw.close()
            assert emails(db_session) == []
    """,
    "sqlite": """
        def test_executescript_on_one_line(db_session):
            raw = models.engine.raw_connection()
            raw.driver_connection.executescript(
                "BEGIN; INSERT INTO users (email) VALUES ('s1@x'); "
                "INSERT INTO users (email) VALUES ('s2@x'); COMMIT;"
            )
            raw.close()
            assert emails(db_session) == ["s1@x", "s2@x"]

        def test_executescript_rolled_back(db_session):
            raw = models.engine.raw_connection()
            raw.driver_connection.executescript(
                "BEGIN; INSERT INTO users (email) VALUES ('s3@x'); ROLLBACK;"
            )
            raw.close()
            assert emails(db_session) == []
    """,
}


def test_transaction_control_below_sqlalchemy(models_project: Project) -> None:
    body = DRIVER_CONTROL[models_project.backend.name]
    count = body.count("def test_") + 1  # and the footer's
    write_tests(models_project, "test_control.py", body)
    run_and_check_empty(models_project, passed=count)


STREAMED = """
def test_stream_while_others_commit(db_session):
    with models.SessionLocal() as session:
        session.add_all([User(email=f"row{i:03}@x") for i in range(200)])
        session.commit()
    seen = 0
    with models.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, max_row_buffer=10).execute(
            select(User.email)
        )
        for seen, _ in enumerate(result, 1):
            if seen % 50 == 0:
                with models.SessionLocal() as session:
                    session.add(User(email=f"late{seen}@x"))
                    session.commit()
    assert seen == 200
    assert len(emails(db_session)) == 204

def test_autocommit_connection_then_plain_ones(db_session):
    with models.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        add(conn, "auto@x")
    for _ in range(2):
        with models.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(User)) == 1
"""


def test_streamed_results_and_autocommit_connections(models_project: Project) -> None:
    write_tests(models_project, "test_streamed.py", STREAMED)
    run_and_check_empty(models_project, passed=3)


@pytest.mark.backends("mariadb")
def test_a_procedure_that_commits_through_callproc_is_a_breach(models_project: Project) -> None:
    models_project.write(
        "conftest.py",
        """
        from sqlalchemy import DDL, event
        import models

        event.listen(
            models.Base.metadata,
            "after_create",
            DDL("CREATE PROCEDURE p_commit() BEGIN "
                "INSERT INTO users (email) VALUES ('proc@x'); COMMIT; END"),
        )
        """,
    )
    write_tests(
        models_project,
        "test_proc.py",
        """
        def test_callproc():
            raw = models.engine.raw_connection()
            try:
                raw.cursor().callproc("p_commit")
            finally:
                raw.close()
        """,
    )
    for _ in range(2):
        result = models_project.run(*RUN)
        result.assert_outcomes(passed=1, failed=1)
        _, message = only_crash(result)
        assert_isolation_error(message)
        assert "CALL p_commit" in message, message
        assert_all_empty(models_project)


MORE_CONTROL = {
    "postgresql": """
        def test_two_phase_commit_is_refused(db_session):
            from pytest_alchemy import IsolationError

            with models.engine.connect() as conn:
                add(conn, "2pc@x")
                with pytest.raises(IsolationError, match="two-phase"):
                    conn.exec_driver_sql("PREPARE TRANSACTION 'tx1'")
                conn.rollback()
            assert emails(db_session) == []

        def test_server_side_cursor_is_not_pulled_from_under_its_reader(db_session):
            from pytest_alchemy import IsolationError

            writer = models.engine.connect()
            add(writer, "w@x")
            with models.engine.connect() as reader:
                result = reader.execution_options(stream_results=True, yield_per=2).execute(
                    select(User.email)
                )
                assert result.fetchmany(1) == [("w@x",)]
                with pytest.raises(IsolationError, match="still in a transaction"):
                    writer.rollback()
                assert result.fetchall() == []
            writer.close()
    """,
    "mariadb": """
        def test_set_autocommit_switches_the_connection(db_session):
            with models.engine.connect() as conn:
                conn.exec_driver_sql("SET autocommit = 1")
                add(conn, "auto@x")
                conn.rollback()  # nothing to undo: the insert was kept at once
                conn.exec_driver_sql("SET autocommit = 0")
            assert emails(db_session) == ["auto@x"]

        def test_comment_before_a_statement_that_commits(db_session):
            from pytest_alchemy import IsolationError

            with models.engine.connect() as conn:
                with pytest.raises(IsolationError, match="commits implicitly"):
                    conn.exec_driver_sql("/* tidy up */ TRUNCATE TABLE posts")

        def test_comment_before_a_commit(db_session):
            with models.engine.connect() as conn:
                add(conn, "c@x")
                conn.exec_driver_sql("-- done\\nCOMMIT")
                add(conn, "d@x")
                conn.rollback()
            assert emails(db_session) == ["c@x"]
    """,
    "sqlite": """
        def test_comment_before_a_commit(db_session):
            with models.engine.connect() as conn:
                add(conn, "c@x")
                conn.exec_driver_sql("/* done */ COMMIT")
                add(conn, "d@x")
                conn.rollback()
            assert emails(db_session) == ["c@x"]
    """,
}


def test_more_transaction_control_below_sqlalchemy(models_project: Project) -> None:
    body = MORE_CONTROL[models_project.backend.name]
    write_tests(models_project, "test_more_control.py", body)
    run_and_check_empty(models_project, passed=body.count("def test_") + 1)


# -- a forked process (pytest-flask's live_server, multiprocessing "fork") ------------------


def test_a_forked_process_is_stopped_from_using_the_tests_connection(
    models_project: Project,
) -> None:
    helper = """
        import os
        from sqlalchemy import select, text
        from models import SessionLocal, User

        def in_child(session):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: a server process would do this in a request
                os.close(read)
                try:
                    session.execute(text("SELECT 1"))
                    message = "no error"
                except Exception as exc:
                    message = str(exc)
                os.write(write, message.encode()[:2000])
                os._exit(0)
            os.close(write)
            os.waitpid(pid, 0)
            with os.fdopen(read) as pipe:
                return pipe.read()
        """
    models_project.write(
        "test_a_child_first.py",
        helper
        + """
        def test_child_would_connect_first(db_session):
            assert "forked from the pytest process" in in_child(SessionLocal())
            assert db_session.scalars(select(User.email)).all() == []
        """,
    )
    models_project.write(
        "test_b_parent_first.py",
        helper
        + """
        def test_parent_connected_first(db_session):
            db_session.add(User(email="a@x"))
            db_session.flush()
            assert "forked from the pytest process" in in_child(db_session)
            assert db_session.scalars(select(User.email)).all() == ["a@x"]
        """,
    )
    result = models_project.run(*RUN, "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=2)
    assert_all_empty(models_project)
