"""The application's own engines, sessionmakers and scoped sessions reach the test
database and each test's transaction, and are given back untouched after it; settings
given as fixtures behave like the ini ones."""

from __future__ import annotations

import os
import textwrap

import pytest

from conftest import MODELS, Project

#: What every inner test module starts with.
HEADER = """
import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
import models
from models import User

def emails(session):
    return sorted(session.scalars(select(User.email)))
"""


def write_tests(project: Project, name: str, body: str) -> None:
    """Write an inner test module: ``HEADER`` and then ``body``."""
    project.write(name, textwrap.dedent(HEADER).lstrip() + textwrap.dedent(body))


def assert_tables_empty(project: Project) -> None:
    """What a ``--alchemy-reuse-db`` run left: the schema, and no rows."""
    assert project.query("SELECT COUNT(*) FROM users") == [(0,)]
    assert project.query("SELECT COUNT(*) FROM posts") == [(0,)]


def assert_no_dev_database(project: Project) -> None:
    """Nothing was written to the application's development database."""
    assert not (project.path / "dev.db").exists()
    if project.backend.server_url is not None:
        assert project.backend.base not in project.databases()


# -- 1. every way the application writes joins the test transaction --------------------


def test_app_writes_join_the_test_transaction(models_project: Project) -> None:
    write_tests(
        models_project,
        "test_app.py",
        """
        def test_app_writes(db_session):
            engine = models.engine
            with engine.begin() as conn:
                conn.execute(insert(User), {"email": "begin@x"})
            with engine.connect() as conn:
                conn.execute(insert(User), {"email": "connect@x"})
                conn.commit()
            with engine.connect() as conn:
                conn.execute(insert(User), {"email": "uncommitted@x"})
                assert conn.scalar(
                    select(func.count()).where(User.email == "uncommitted@x")) == 1
            assert "uncommitted@x" not in emails(db_session)
            with Session(engine) as session:
                session.add(User(email="session@x"))
                session.commit()
            with models.SessionLocal() as session:
                session.add(User(email="sessionlocal@x"))
                session.commit()
            models.ScopedSession.add(User(email="scoped@x"))
            models.ScopedSession.commit()
            with models.SessionLocal() as session:
                session.add(User(email="outer@x"))
                with pytest.raises(ValueError), session.begin_nested():
                    session.add(User(email="nested@x"))
                    session.flush()
                    raise ValueError("undo the savepoint")
                session.commit()
            assert emails(db_session) == [
                "begin@x", "connect@x", "outer@x", "scoped@x", "session@x",
                "sessionlocal@x",
            ]

        def test_next_test_starts_empty(db_session):
            assert emails(db_session) == []
            with models.SessionLocal() as session:
                assert emails(session) == []
        """,
    )
    models_project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=2)
    assert_tables_empty(models_project)
    assert_no_dev_database(models_project)


# -- 2. an application error inside the test keeps what the test did before it ----------


def test_app_integrity_error_keeps_earlier_rows(models_project: Project) -> None:
    write_tests(
        models_project,
        "test_app_error.py",
        """
        def create_user(email):
            # Application code: report a duplicate instead of failing.
            with models.SessionLocal() as session:
                session.add(User(email=email))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    return False
                return True

        def test_app_recovers(db_session):
            db_session.add(User(email="committed@x"))
            db_session.commit()
            db_session.add(User(email="flushed@x"))
            db_session.flush()
            assert create_user("committed@x") is False
            assert create_user("flushed@x") is False
            assert create_user("app@x") is True
            db_session.commit()
            assert emails(db_session) == ["app@x", "committed@x", "flushed@x"]
            with models.SessionLocal() as session:
                assert emails(session) == ["app@x", "committed@x", "flushed@x"]
        """,
    )
    models_project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert_tables_empty(models_project)


# -- 3. routing is undone after each test -----------------------------------------------


def test_routing_is_undone_after_each_test(models_project: Project) -> None:
    write_tests(
        models_project,
        "test_undo.py",
        """
        def test_routed(db_session, db_connection):
            with models.SessionLocal() as session:  # bound to the app engine, as in production
                assert session.get_bind() is models.engine
                assert session.connection().engine is models.engine
                session.add(User(email="b@x"))
                session.commit()
            assert db_session.scalars(select(User.email)).all() == ["b@x"]
            models.ScopedSession.add(User(email="a@x"))
            models.ScopedSession.flush()
            assert models.ScopedSession.registry.has()

        def test_plain():
            assert models.SessionLocal.kw.get("bind") is models.engine
            assert "join_transaction_mode" not in models.SessionLocal.kw
            assert models.ScopedSession.session_factory.kw.get("bind") is models.engine
            assert "join_transaction_mode" not in models.ScopedSession.session_factory.kw
            assert not models.ScopedSession.registry.has()
            with models.engine.connect() as conn:  # a Connection, as in production
                assert type(conn).__name__ == "Connection"
                assert conn.scalar(select(func.count()).select_from(User)) == 0
                conn.execute(insert(User), {"email": "no-fixture@x"})
                conn.commit()  # a test without database fixtures is isolated too
        """,
    )
    models_project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=2)
    assert_tables_empty(models_project)


# -- 4. fixtures wider than a test use the test database, and their rows end with them --


def test_wide_fixtures_reach_the_test_database(project: Project) -> None:
    dev_url = project.backend.url or "sqlite:///dev.db"
    models = MODELS.replace('os.environ.get("APP_DATABASE_URL", "sqlite:///dev.db")', repr(dev_url))
    assert repr(dev_url) in models
    project.write("models.py", models)
    project.ini(
        alchemy_metadata="models:Base",
        alchemy_engines="models:engine",
        alchemy_sessionmakers=["models:SessionLocal", "models:ScopedSession"],
    )
    project.write(
        "conftest.py",
        """
        import pytest
        from sqlalchemy import insert
        import models

        @pytest.fixture(scope="session")
        def session_rows():
            with models.engine.begin() as conn:
                conn.execute(insert(models.User), {"email": "session@x"})

        @pytest.fixture(scope="module")
        def module_rows():
            with models.engine.begin() as conn:
                conn.execute(insert(models.User), {"email": "module@x"})
        """,
    )
    write_tests(
        project,
        "test_wide.py",
        """
        def test_sees_fixture_rows(session_rows, module_rows, db_session):
            assert emails(db_session) == ["module@x", "session@x"]
            db_session.add(User(email="test@x"))
            db_session.commit()

        def test_only_fixture_rows_stay(session_rows, module_rows, db_session):
            assert emails(db_session) == ["module@x", "session@x"]
        """,
    )
    project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=2)
    assert_tables_empty(project)  # the fixtures' rows ended with their scopes
    assert_no_dev_database(project)


# -- 5. alchemy_session_options -----------------------------------------------------------


def test_session_options_are_honoured(models_project: Project) -> None:
    models_project.write(
        "conftest.py",
        """
        import pytest
        from sqlalchemy.orm import Session

        class MySession(Session):
            pass

        @pytest.fixture
        def alchemy_session_options():
            return {"expire_on_commit": False, "class_": MySession}
        """,
    )
    write_tests(
        models_project,
        "test_options.py",
        """
        from sqlalchemy import inspect
        from conftest import MySession

        def test_options(db_session, db_connection):
            assert type(db_session) is MySession
            assert db_session.expire_on_commit is False
            user = User(email="a@x")
            db_session.add(user)
            db_session.commit()
            statements = []
            event.listen(models.engine, "before_cursor_execute",
                         lambda *args: statements.append(args[2]))
            assert not inspect(user).expired
            assert (user.id, user.email) == (1, "a@x")
            assert statements == []
            assert emails(db_session) == ["a@x"]
            assert any("SELECT" in s for s in statements)  # the listener does listen
        """,
    )
    models_project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert_tables_empty(models_project)


def test_session_options_reject_a_non_session_class(models_project: Project) -> None:
    models_project.write(
        "conftest.py",
        """
        import pytest

        @pytest.fixture
        def alchemy_session_options():
            return {"class_": dict}
        """,
    )
    write_tests(models_project, "test_bad.py", "def test_x(db_session):\n    pass\n")
    result = models_project.run()
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "alchemy_session_options['class_'] is <class 'dict'>, not a Session class" in output
    assert "Traceback" not in output
    assert models_project.databases() == set()


# -- 6. settings as fixtures -------------------------------------------------------------


@pytest.mark.parametrize("metadata", ["models.Base.metadata", "models.Base"])
def test_settings_as_fixtures(project: Project, metadata: str) -> None:
    project.write("models.py", MODELS)
    project.ini(alchemy_url_env="APP_DATABASE_URL")  # the engine's URL, nothing more
    project.write(
        "conftest.py",
        f"""
        import pytest
        import models

        @pytest.fixture(scope="session")
        def alchemy_metadata():
            return {metadata}

        @pytest.fixture(scope="session")
        def alchemy_engines():
            return [models.engine]

        @pytest.fixture(scope="session")
        def alchemy_sessionmakers():
            return [models.SessionLocal]
        """,
    )
    write_tests(
        project,
        "test_fixtures.py",
        """
        def test_routed(db_session, db_connection):
            with models.SessionLocal() as session:
                assert session.get_bind() is models.engine  # as in production
            assert models.ScopedSession.session_factory.kw["bind"] is models.engine
            with models.engine.begin() as conn:
                conn.execute(insert(User), {"email": "engine@x"})
            with models.SessionLocal() as session:
                session.add(User(email="sessionlocal@x"))
                session.commit()
            assert emails(db_session) == ["engine@x", "sessionlocal@x"]
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert_tables_empty(project)


# -- 7. alchemy_url_env ------------------------------------------------------------------


def test_url_env_is_set_before_conftest_and_restored(project: Project) -> None:
    assert "APP_DATABASE_URL" not in os.environ
    expected = project.backend.test_db_url(project.path)
    project.write("models.py", MODELS)
    project.ini(alchemy_metadata="models:Base", alchemy_url_env="APP_DATABASE_URL")
    project.write(
        "conftest.py",
        """
        import os
        import pytest

        URL_AT_IMPORT = os.environ.get("APP_DATABASE_URL")

        @pytest.fixture
        def url_at_import():
            return URL_AT_IMPORT
        """,
    )
    write_tests(
        project,
        "test_env.py",
        f"""
        import os

        def test_env(url_at_import, db_engine):
            assert os.environ["APP_DATABASE_URL"] == {expected!r}
            assert url_at_import == {expected!r}
            assert os.environ["APP_DATABASE_URL"].endswith(db_engine.url.database)
            assert models.engine.url.database == db_engine.url.database
        """,
    )
    project.run().assert_outcomes(passed=1)
    assert "APP_DATABASE_URL" not in os.environ
    assert_no_dev_database(project)


# -- 8. db_connection with Core ----------------------------------------------------------


def test_db_connection_core_writes_are_shared_and_undone(models_project: Project) -> None:
    write_tests(
        models_project,
        "test_core.py",
        """
        def test_core(db_connection, db_session):
            db_connection.execute(insert(User), [{"email": "a@x"}, {"email": "b@x"}])
            assert emails(db_session) == ["a@x", "b@x"]
            db_session.add(User(email="c@x"))
            db_session.commit()
            count = select(func.count()).select_from(User)
            assert db_connection.scalar(count) == 3

        def test_next_test_starts_empty(db_connection):
            assert db_connection.scalar(select(func.count()).select_from(User)) == 0
        """,
    )
    models_project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=2)
    assert_tables_empty(models_project)


# -- 9. an application engine made with isolation_level="AUTOCOMMIT" -----------------------


@pytest.mark.backends("postgresql", "mariadb")  # SQLite: the plugin's SAVEPOINT fix begins
def test_autocommit_engine_keeps_statements_and_still_leaves_nothing(project: Project) -> None:
    project.write(
        "models.py",
        MODELS.replace(
            'create_engine(os.environ.get("APP_DATABASE_URL", "sqlite:///dev.db"))',
            'create_engine(os.environ.get("APP_DATABASE_URL", "sqlite:///dev.db"), '
            'isolation_level="AUTOCOMMIT")',
        ),
    )
    assert 'isolation_level="AUTOCOMMIT"' in (project.path / "models.py").read_text()
    project.ini(
        alchemy_metadata="models:Base",
        alchemy_engines="models:engine",
        alchemy_url_env="APP_DATABASE_URL",
    )
    write_tests(
        project,
        "test_autocommit.py",
        """
        @pytest.mark.parametrize("n", range(2))
        def test_kept_without_commit(db_session, n):
            assert emails(db_session) == []
            with models.engine.connect() as conn:  # no commit: AUTOCOMMIT keeps it
                conn.execute(insert(User), {"email": "auto@x"})
            assert emails(db_session) == ["auto@x"]
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=2)
    assert_tables_empty(project)


# -- an engine behind a function ------------------------------------------------------------

#: The application creates its engine on first call of a cached function.
ENGINE_FACTORY = (
    MODELS
    + """
    import functools

    calls = []

    @functools.lru_cache
    def get_engine():
        calls.append(1)
        return create_engine(os.environ.get("APP_DATABASE_URL", "sqlite:///dev.db"))
"""
)


def test_engine_given_as_a_function_is_called_once_and_routed(project: Project) -> None:
    project.write("models.py", ENGINE_FACTORY)
    project.ini(
        alchemy_metadata="models:Base",
        alchemy_engines="models:get_engine",
        alchemy_url_env="APP_DATABASE_URL",
    )
    write_tests(
        project,
        "test_factory.py",
        """
        @pytest.fixture(params=[1, 2])
        def n(request):
            return request.param

        def test_factory_engine_joins_the_test(db_session, n):
            with models.get_engine().begin() as conn:
                conn.execute(insert(User), {"email": f"factory{n}@x"})
            assert emails(db_session) == [f"factory{n}@x"]
            assert models.calls == [1]
        """,
    )
    result = project.run("-p", "no:randomly", "--alchemy-reuse-db")
    result.assert_outcomes(passed=2)
    assert_tables_empty(project)
    assert_no_dev_database(project)
