"""Inside a test, the application's engines behave as they do in production (their own
connections, options, listeners and dialect settings), the test's transaction cannot be
committed for real, and the run keeps its promises about the databases and the output:
a busy database is left alone, no password is shown, logging is given back, and names
and folders that cannot work stop the run with a short message."""

from __future__ import annotations

import contextlib
import sqlite3
import textwrap
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from conftest import Project, output

#: What every inner test module over ``MODELS`` starts with.
HEADER = """
import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from pytest_alchemy import IsolationError
import models
from models import User

def emails(session):
    return sorted(session.scalars(select(User.email)))

def add(conn, email):
    conn.execute(insert(User), {"email": email})

def open_two():
    \"\"\"Two application connections, each in a transaction: a@x, then b@x.\"\"\"
    c1 = models.engine.connect()
    add(c1, "a@x")
    c2 = models.engine.connect()
    add(c2, "b@x")
    return c1, c2
"""

#: What every inner test module over ``MODELS`` ends with (runs last: no randomising).
FOOTER = """
def test_zz_next_test_starts_empty(db_session):
    assert emails(db_session) == []
"""

#: An inner test that must never get to run.
MUST_NOT_RUN = """
def test_db(db_session):
    raise AssertionError("must not run")
"""


def write_tests(project: Project, name: str, body: str) -> int:
    """Write an inner test module (``HEADER``, ``body``, ``FOOTER``); returns its number
    of tests."""
    source = "\n".join(textwrap.dedent(part).strip() + "\n" for part in (HEADER, body, FOOTER))
    project.write(name, source)
    return source.count("\ndef test_")


def run_and_check_empty(project: Project, passed: int) -> None:
    """Run in order with --alchemy-reuse-db; every test passes and no row is left."""
    project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=passed)
    assert project.query("SELECT COUNT(*) FROM users") == [(0,)]
    assert project.query("SELECT COUNT(*) FROM posts") == [(0,)]


# -- 1. an engine made with creator= is stopped before it reaches its own database -------

CREATOR_MODELS = """
import psycopg, pymysql, sqlite3
from sqlalchemy import String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(100))

engine = create_engine(URL, creator=lambda: CONNECT)
"""


def creator_source(project: Project) -> tuple[str, str]:
    """The app engine's URL and its creator call, aimed at the application's database."""
    if project.backend.url is None:
        return "sqlite:///dev.db", "sqlite3.connect('dev.db')"
    url = make_url(project.backend.url)
    where = f"host={url.host!r}, port={url.port}, user={url.username!r}"
    if project.backend.name == "postgresql":
        return project.backend.url, f"psycopg.connect({where}, dbname={url.database!r})"
    return project.backend.url, f"pymysql.connect({where}, database={url.database!r})"


def app_database_tables(project: Project) -> list[str]:
    """The tables of the application's own database (dev.db, or the base database)."""
    if project.backend.url is None:
        path = project.path / "dev.db"
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(path)) as conn:  # sqlite3's own `with` never closes
            return [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = " + (
        "'public'" if project.backend.name == "postgresql" else "DATABASE()"
    )
    return sorted(r[0] for r in project.query(sql, name=project.backend.base))


def test_creator_engine_is_stopped_before_its_own_database(project: Project) -> None:
    url, connect = creator_source(project)
    if project.backend.url is not None:
        # The application's database exists (with its own table) and the creator reaches it.
        project.backend.create_foreign(project.path, project.backend.base)
    project.write("models.py", CREATOR_MODELS.replace("URL", repr(url)).replace("CONNECT", connect))
    project.ini(alchemy_metadata="models:Base", alchemy_engines="models:engine")
    project.write(
        "conftest.py",
        """
        import pytest
        from sqlalchemy import insert
        import models

        @pytest.fixture(scope="session")
        def seeded():
            models.Base.metadata.create_all(models.engine)
            with models.engine.begin() as conn:
                conn.execute(insert(models.User), {"email": "seed@x"})
        """,
    )
    project.write(
        "test_seed.py",
        "def test_seed(seeded, db_session):\n    raise AssertionError('must not run')\n",
    )
    result = project.run()
    text_ = output(result)
    result.assert_outcomes(errors=1)
    assert "alchemy_engines entry 'models:engine' connects through its own creator" in text_
    assert "must not run" not in text_
    expected = [] if project.backend.url is None else ["precious"]
    assert app_database_tables(project) == expected
    if project.backend.url is not None:
        assert project.query("SELECT id FROM precious", name=project.backend.base) == [(42,)]


# -- 2.-6. and 8. the application's connections inside a test ---------------------------

ROUTED = {
    # 2. engines made by execution_options() are routed; AUTOCOMMIT keeps each statement
    "execution_options": """
        def test_option_engines(db_session):
            conn = models.engine.execution_options(isolation_level="AUTOCOMMIT").connect()
            add(conn, "auto@x")
            with pytest.raises(IntegrityError):
                add(conn, "auto@x")  # fails alone: the statement before it is kept
            conn.close()  # no commit
            assert emails(db_session) == ["auto@x"]
            with models.engine.execution_options(x=1).begin() as conn:
                assert conn.get_execution_options()["x"] == 1
                add(conn, "begin@x")
            assert emails(db_session) == ["auto@x", "begin@x"]

        def test_connection_level_autocommit(db_session):
            with models.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                add(conn, "conn-auto@x")
            with models.engine.connect() as conn:  # a plain connection: closing discards
                add(conn, "discarded@x")
            assert emails(db_session) == ["conn-auto@x"]
    """,
    # 3. two connections side by side commit in order; a non-LIFO rollback is refused
    "interleaved": """
        def test_both_commit(db_session):
            c1, c2 = open_two()
            c1.commit()
            c2.commit()
            c1.close()
            c2.close()
            assert emails(db_session) == ["a@x", "b@x"]

        def test_later_one_rolls_back(db_session):
            c1, c2 = open_two()
            c1.commit()
            c2.rollback()
            c1.close()
            c2.close()
            assert emails(db_session) == ["a@x"]

        def test_earlier_rollback_is_refused(db_session):
            c1, c2 = open_two()
            with pytest.raises(IsolationError, match="opened after it"):
                c1.rollback()
    """,
    # 3. what follows a refused rollback, and a commit made inside an earlier transaction
    "refused_rollback": """
        def test_refused_rollback_keeps_the_transaction(db_session):
            # The message says: close the later connection first; then it can roll back.
            c1, c2 = open_two()
            with pytest.raises(IsolationError, match="opened after it"):
                c1.rollback()
            c2.close()
            c1.rollback()
            assert emails(db_session) == []

        def test_commit_of_a_later_connection_is_not_lost(db_session):
            c1, c2 = open_two()
            c2.commit()
            c2.close()
            try:
                c1.rollback()
            except IsolationError:
                return  # refusing is fair; silently dropping the committed b@x is not
            assert emails(db_session) == ["b@x"]
    """,
    # 4. a routed session and a connection side by side
    "session_and_connection": """
        def test_session_then_connection(db_session):
            session = models.SessionLocal()
            session.add(User(email="session@x"))
            session.flush()
            conn = models.engine.connect()
            add(conn, "conn@x")
            session.commit()
            conn.commit()
            conn.close()
            session.add(User(email="after@x"))
            session.commit()
            session.close()
            assert emails(db_session) == ["after@x", "conn@x", "session@x"]
    """,
    # 5. Session(bind=engine.connect()), and sessionmakers keep their engine
    "session_bound_to_a_connection": """
        def test_session_bound_to_a_connection(db_session):
            assert models.SessionLocal().get_bind() is models.engine
            conn = models.engine.connect()
            with Session(bind=conn) as session:
                # One connection for the session's transaction, as in production.
                assert session.connection() is session.connection()
                session.add(User(email="docs@x"))
                session.flush()
                assert session.scalars(select(User.email)).all() == ["docs@x"]
                session.commit()
            conn.close()
            assert emails(db_session) == ["docs@x"]
    """,
    # 6. invalidate() ends that connection only
    "invalidate": """
        def test_invalidate_ends_only_that_connection(db_session):
            db_session.add(User(email="before@x"))
            db_session.commit()
            conn = models.engine.connect()
            add(conn, "lost@x")
            conn.invalidate()
            assert conn.invalidated
            with models.engine.connect() as other:
                add(other, "other@x")
                other.commit()
            db_session.add(User(email="session@x"))
            db_session.commit()
            assert emails(db_session) == ["before@x", "other@x", "session@x"]
    """,
    # 8. the test's own connection cannot be committed
    # 9. a test session and application sessions interleaved, in the orders real flows use
    "test_session_and_app_sessions": """
        def test_db_session_commit_under_an_open_app_session(db_session):
            db_session.add(User(email="a@x"))
            db_session.flush()
            assert models.ScopedSession.scalars(select(User.email)).all() == ["a@x"]
            db_session.commit()  # the app's session (opened later) is still open
            models.ScopedSession.remove()
            assert emails(db_session) == ["a@x"]

        def test_read_only_app_session_closed_after_a_later_commit(db_session):
            models.ScopedSession.scalars(select(User.email)).all()  # reads, stays open
            db_session.add(User(email="b@x"))
            db_session.commit()
            models.ScopedSession.remove()  # nothing of its own to undo: b@x stays
            assert emails(db_session) == ["b@x"]

        def test_app_session_closed_without_commit_after_db_session_commit(db_session):
            session = models.SessionLocal()
            session.scalar(select(User.email))
            db_session.add(User(email="c@x"))
            db_session.commit()
            session.close()
            assert emails(db_session) == ["c@x"]
    """,
    # 10. a connection's own savepoints end with it; the application's exception survives
    "own_savepoints": """
        def test_rollback_with_own_savepoint_open(db_session):
            conn = models.engine.connect()
            add(conn, "a@x")
            conn.begin_nested()
            add(conn, "b@x")
            conn.rollback()
            conn.close()
            assert emails(db_session) == []

        def test_commit_with_own_savepoint_open(db_session):
            with models.engine.connect() as conn:
                add(conn, "a@x")
                conn.begin_nested()
                add(conn, "b@x")
                conn.commit()
            assert emails(db_session) == ["a@x", "b@x"]

        def test_application_exception_is_not_replaced(db_session):
            with pytest.raises(ValueError, match="app error"):
                with models.engine.begin() as conn:
                    add(conn, "a@x")
                    conn.begin_nested()
                    add(conn, "b@x")
                    raise ValueError("app error")
            assert emails(db_session) == []
    """,
    # 11. the driver connection of an application connection commits only that connection
    "driver_connection": """
        def test_driver_level_commit(db_session):
            with models.engine.connect() as conn:
                add(conn, "a@x")
                conn.connection.commit()
            assert emails(db_session) == ["a@x"]
    """,
    # 12. an engine derived before the test with execution_options() shares the routing
    "engine_derived_before_the_test": """
        TAGGED = models.engine.execution_options(logging_token="reports")

        def test_derived_before_is_routed(db_session):
            with TAGGED.begin() as conn:
                add(conn, "tagged@x")
            assert emails(db_session) == ["tagged@x"]
    """,
    # 13. the test's own connection commits a savepoint: nothing is left behind
    "db_connection_commit": """
        def test_db_connection_commit(db_connection, db_session):
            add(db_connection, "a@x")
            db_connection.commit()
            assert emails(db_session) == ["a@x"]
            add(db_connection, "b@x")
            db_connection.rollback()
            assert emails(db_session) == ["a@x"]

        def test_session_connection_commit(db_session):
            db_session.add(User(email="b@x"))
            db_session.flush()
            db_session.connection().commit()
            assert emails(db_session) == ["b@x"]
    """,
}


@pytest.mark.parametrize("case", ROUTED)
def test_app_connections_inside_a_test(models_project: Project, case: str) -> None:
    """Every inner test passes, the last one starts empty, and no row is left."""
    count = write_tests(models_project, f"test_{case}.py", ROUTED[case])
    run_and_check_empty(models_project, passed=count)


# -- 7. the application engine's listeners and dialect options ----------------------------

JSON_MODELS = """
import json, os
from sqlalchemy import JSON, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[dict] = mapped_column(JSON)

engine = create_engine(
    os.environ.get("APP_DATABASE_URL", "sqlite:///dev.db"),
    json_serializer=lambda o: json.dumps(o, default=str),
)
STATEMENTS = []

@event.listens_for(engine, "before_cursor_execute")
def record(conn, cursor, statement, parameters, context, executemany):
    STATEMENTS.append(statement)
"""


def test_app_engine_listeners_and_dialect_options_apply(project: Project) -> None:
    project.write("models.py", JSON_MODELS)
    project.ini(
        alchemy_metadata="models:Base",
        alchemy_engines="models:engine",
        alchemy_url_env="APP_DATABASE_URL",
    )
    project.write(
        "test_app_engine.py",
        """
        import datetime
        from sqlalchemy import select
        import models
        from models import Event

        def test_listener(db_session):
            models.STATEMENTS.clear()
            assert db_session.scalars(select(Event)).all() == []
            assert any("events" in s for s in models.STATEMENTS), models.STATEMENTS

        def test_json_serializer(db_session):
            db_session.add(Event(data={"on": datetime.date(2024, 5, 17)}))
            db_session.commit()
            db_session.expire_all()
            assert db_session.scalars(select(Event.data)).one() == {"on": "2024-05-17"}
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=2)
    assert project.query("SELECT COUNT(*) FROM events") == [(0,)]


# -- 9. a database in use is not pulled from under its user -------------------------------


@pytest.mark.backends("postgresql", "mariadb")
def test_database_in_use_is_left_alone(models_project: Project) -> None:
    models_project.write("test_first.py", "def test_first(db_session):\n    pass\n")
    models_project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    name = models_project.test_db_name()
    assert models_project.databases() == {name}
    outside = create_engine(
        models_project.backend.test_db_url(models_project.path), poolclass=NullPool
    )
    conn = outside.connect()
    try:
        conn.execute(text("INSERT INTO users (email) VALUES ('outside@x')"))
        conn.commit()
        models_project.replace_tests("test_second.py", MUST_NOT_RUN)
        result = models_project.run()  # without reuse: it would drop and rebuild
        text_ = output(result)
        assert result.ret == pytest.ExitCode.INTERRUPTED, text_
        assert f"the test database {name!r}" in text_
        assert "is in use by 1 other connection(s)" in text_
        assert "must not run" not in text_
        assert "Traceback" not in text_
    finally:
        conn.close()
        outside.dispose()
    assert models_project.databases() == {name}
    assert models_project.query("SELECT email FROM users") == [("outside@x",)]


# -- 10. a password in the query string is never shown ------------------------------------


@pytest.mark.backends("postgresql")
def test_password_in_the_query_string_is_hidden(models_project: Project) -> None:
    secret = f"s3cret{uuid.uuid4().hex[:8]}"
    url = make_url(models_project.backend.url).update_query_dict({"password": secret})
    args = ["--alchemy-url", url.render_as_string(hide_password=False), "-p", "no:cacheprovider"]
    models_project.write("test_pw.py", "def test_db(db_session):\n    pass\n")
    passed = models_project.pytester.runpytest(*args)
    passed.assert_outcomes(passed=1)
    # A message that names the test database's URL hides it too.
    name = models_project.test_db_name()
    models_project.backend.create_foreign(models_project.path, name)
    refused = models_project.pytester.runpytest(*args)
    assert "it exists but was not created by pytest-alchemy" in output(refused)
    for result in (passed, refused):
        assert secret not in output(result)
    header = [
        line
        for line in passed.stdout.lines
        if line.startswith("alchemy: ") and "[from " in line  # not the summary's line
    ]
    assert len(header) == 1
    assert header[0].endswith(f"/{name}?password=*** [from --alchemy-url]")
    assert f"/{name}?password=***" in output(refused)


# -- 11. logging is given back after an Alembic build that reconfigured it ---------------

ALEMBIC_INI = """
[alembic]
script_location = %(here)s/migrations
path_separator = os

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARN
handlers =
qualname = sqlalchemy

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""

ENV_PY = """
from logging.config import fileConfig
from alembic import context

config = context.config
fileConfig(config.config_file_name)
context.configure(connection=config.attributes["connection"])
with context.begin_transaction():
    context.run_migrations()
"""

REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "1a1a1a1a1a1a"
down_revision = None

def upgrade():
    op.create_table("authors", sa.Column("id", sa.Integer, primary_key=True))
"""

LOGGING_CONFTEST = """
import logging
import alembic.command  # its import adds a NullHandler to "alembic": part of "before"

logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
logging.getLogger("alembic").setLevel(logging.WARNING)
logging.getLogger("myapp").addHandler(logging.NullHandler())
logging.getLogger("myapp").propagate = False

def logging_state():
    state = {}
    for name in ("", "sqlalchemy", "sqlalchemy.engine", "alembic", "myapp"):
        logger = logging.getLogger(name)
        # pytest adds its own capture handlers to the root logger during each test.
        handlers = [h for h in logger.handlers if not type(h).__module__.startswith("_pytest")]
        state[name] = (logger.level, handlers, logger.propagate, logger.disabled)
    return state

BEFORE = logging_state()
"""


def test_logging_is_restored_after_an_alembic_build(project: Project) -> None:
    project.write("alembic.ini", ALEMBIC_INI)
    project.write("migrations/env.py", ENV_PY)
    project.write("migrations/versions/1a1a1a1a1a1a_authors.py", REVISION)
    project.write("conftest.py", LOGGING_CONFTEST)
    project.ini(alchemy_alembic_ini="alembic.ini")
    project.write(
        "test_logging.py",
        """
        import logging
        from sqlalchemy import inspect
        from conftest import BEFORE, logging_state

        def test_logging_as_before(db_connection):
            assert "authors" in inspect(db_connection).get_table_names()  # built by Alembic
            assert logging.getLogger("sqlalchemy.engine").level == logging.INFO
            assert logging.getLogger("alembic").level == logging.WARNING
            assert logging_state() == BEFORE
        """,
    )
    # In a subprocess: the inner conftest changes logging for the whole process.
    result = project.run_subprocess()
    result.assert_outcomes(passed=1)


# -- 12. an unwritable cache folder (SQLite) ------------------------------------------


@pytest.mark.backends("sqlite")
def test_unwritable_cache_folder_is_a_short_message(
    models_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = models_project.path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    models_project.write("test_db.py", MUST_NOT_RUN)
    result = models_project.run()
    text_ = output(result)
    assert result.ret == pytest.ExitCode.INTERRUPTED, text_
    assert "cannot create the folder for SQLite test databases" in text_
    assert str(blocker) in text_
    assert "Traceback" not in text_
    assert "must not run" not in text_
    assert blocker.read_text() == "a file where the cache folder should be"


# -- 13. database names are limited in bytes, not characters -----------------------------


@pytest.mark.backends("postgresql", "mariadb")
# Found when the URL is set for alchemy_url_env (configure), or when the database is needed.
@pytest.mark.parametrize("url_env", [True, False], ids=["url_env", "fixture"])
def test_over_long_base_name_counted_in_bytes(project: Project, url_env: bool) -> None:
    # 45 characters, 70 bytes once prefixed: short enough in characters, too long in bytes.
    project.backend.base = "é" * 20 + uuid.uuid4().hex[:25]
    name = f"test_{project.backend.base}"
    assert len(name) < 63 < 64 < len(name.encode())
    project.ini(**({"alchemy_url_env": "APP_DATABASE_URL"} if url_env else {}))
    project.write("test_db.py", MUST_NOT_RUN)
    result = project.run()
    text_ = output(result)
    limit = 63 if project.backend.name == "postgresql" else 64
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text_
    assert f"is longer than the {limit} bytes" in text_
    assert "Traceback" not in text_
    assert "must not run" not in text_
    assert project.databases() == set()


REUSED_POOLED_CONNECTIONS = """
@pytest.mark.parametrize("n", range(3))
def test_refused_rollback_raises_every_time(db_session, n):
    with models.engine.connect() as warm:  # a pooled connection, returned and reused
        warm.execute(select(User.email)).all()
    first = models.engine.connect()
    add(first, f"first{n}@x")
    second = models.engine.connect()
    add(second, f"second{n}@x")
    with pytest.raises(IsolationError, match="opened after it"):
        first.rollback()
    second.rollback()
    second.close()
    first.rollback()
    first.close()
    assert emails(db_session) == []
"""


def test_refusals_do_not_depend_on_pool_history(models_project: Project) -> None:
    count = write_tests(models_project, "test_pooled.py", REUSED_POOLED_CONNECTIONS)
    run_and_check_empty(models_project, passed=count + 2)
