"""The test database's life: created only when a test needs it, named ``test_<base>``
(``_gw<N>`` per xdist worker), dropped at the end unless reused, and never a database
the plugin did not create."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from conftest import Project, output
from pytest_alchemy._settings import sqlite_dir

#: A model of one table; ``{extra}`` adds lines to the class (a schema change).
ITEMS = """
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
{extra}"""

#: Inner-test helpers: the database name of a URL (SQLite: the file's stem), and whether
#: a database exists, asked of the server (or the file system) while the run goes on.
HELPERS = """
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

def name_of(url):
    if url.get_backend_name() == "sqlite":
        return Path(url.database).stem
    return url.database

def database_exists(admin_url, name, sqlite_path):
    if admin_url is None:
        return Path(sqlite_path).exists()
    engine = create_engine(admin_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                sql = "SELECT 1 FROM pg_database WHERE datname = :n"
            else:
                sql = "SELECT 1 FROM information_schema.schemata WHERE schema_name = :n"
            return conn.execute(text(sql), {"n": name}).first() is not None
    finally:
        engine.dispose()
"""


def exists_call(project: Project) -> str:
    """Inner-test source: ``database_exists(...)`` for this project's test database."""
    backend = project.backend
    path = sqlite_dir(project.path) / "test_alchemy.db"
    return f"database_exists({backend.server_url!r}, {project.test_db_name()!r}, {str(path)!r})"


def items_project(project: Project, *, colour: bool = False) -> Project:
    """``models.py`` with the ``items`` table (plus a ``colour`` column if asked)."""
    extra = "    colour: Mapped[str] = mapped_column(String(20), nullable=True)\n" if colour else ""
    project.write("models.py", ITEMS.format(extra=extra))
    project.write("helpers.py", HELPERS)
    project.ini(alchemy_metadata="models:Base")
    return project


# -- lazy -----------------------------------------------------------------------------------


def test_run_without_database_fixtures_creates_nothing(models_project: Project) -> None:
    models_project.write("helpers.py", HELPERS)
    models_project.write(
        "test_plain.py",
        f"""
        import models
        from helpers import database_exists

        def test_plain():
            assert models.User.__tablename__ == "users"
            assert not {exists_call(models_project)}

        def test_also_plain(tmp_path):
            assert tmp_path.exists()
        """,
    )
    models_project.run().assert_outcomes(passed=2)
    assert models_project.databases() == set()
    assert not (models_project.path / "dev.db").exists()


def test_deselected_database_tests_create_nothing(models_project: Project) -> None:
    models_project.write(
        "test_mixed.py",
        """
        def test_plain():
            assert True

        def test_db(db_session):
            assert db_session is not None
        """,
    )
    result = models_project.run("--alchemy-reuse-db", "-k", "plain")
    result.assert_outcomes(passed=1, deselected=1)
    assert models_project.databases() == set()
    result = models_project.run("--alchemy-reuse-db", "--collect-only")
    assert result.ret == 0
    assert models_project.databases() == set()


# -- created, used, dropped ----------------------------------------------------------------


def test_database_is_created_for_the_run_and_dropped_after(models_project: Project) -> None:
    name = models_project.test_db_name()
    models_project.write("helpers.py", HELPERS)
    models_project.write(
        "test_db.py",
        f"""
        from sqlalchemy import inspect
        from helpers import database_exists, name_of

        def test_created(db_engine):
            assert name_of(db_engine.url) == {name!r}
            assert {exists_call(models_project)}
            tables = set(inspect(db_engine).get_table_names())
            assert {{"users", "posts"}} <= tables

        def test_same_database(db_connection):
            assert name_of(db_connection.engine.url) == {name!r}
        """,
    )
    models_project.run().assert_outcomes(passed=2)
    assert models_project.databases() == set()


def test_sqlite_file_lives_in_the_user_cache_folder(models_project: Project) -> None:
    folder = sqlite_dir(models_project.path)
    models_project.write(
        "test_where.py",
        f"""
        from pathlib import Path

        def test_where(db_engine):
            if db_engine.url.get_backend_name() == "sqlite":
                path = Path(db_engine.url.database)
                assert path == Path({str(folder)!r}) / "test_alchemy.db"
                assert path.is_file()
            else:
                assert db_engine.url.database == {models_project.test_db_name()!r}
        """,
    )
    models_project.run().assert_outcomes(passed=1)
    assert models_project.databases() == set()
    assert not (models_project.path / "dev.db").exists()


# -- reuse ------------------------------------------------------------------------------------


def test_reuse_keeps_reuses_and_rebuilds_on_schema_change(project: Project) -> None:
    items_project(project)
    name = project.test_db_name()

    # Run 1 keeps the database; what its test wrote is undone.
    project.replace_tests(
        "test_run1.py",
        """
        from sqlalchemy import insert
        from models import Item

        def test_write(db_engine):
            with db_engine.begin() as conn:
                conn.execute(insert(Item).values(id=1, name="kept"))
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert project.databases() == {name}
    assert project.query("SELECT id, name FROM items") == []
    # A row written outside any run tells whether the next run reuses the database.
    project.execute("INSERT INTO items (id, name) VALUES (1, 'kept')")

    # Run 2 reuses it: the row is still there.
    project.replace_tests(
        "test_run2.py",
        """
        from sqlalchemy import select
        from models import Item

        def test_still_there(db_connection):
            assert db_connection.execute(select(Item.id, Item.name)).all() == [(1, "kept")]
        """,
    )
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=1)
    assert "reused while its schema is unchanged" in result.stdout.str()
    assert project.databases() == {name}
    assert project.query("SELECT id, name FROM items") == [(1, "kept")]

    # A changed model makes the next reuse run rebuild: row gone, new column there.
    items_project(project, colour=True)
    project.replace_tests(
        "test_run3.py",
        """
        from sqlalchemy import inspect, insert, select
        from models import Item

        def test_rebuilt(db_engine):
            with db_engine.connect() as conn:
                assert conn.execute(select(Item.id)).all() == []
                columns = {c["name"] for c in inspect(conn).get_columns("items")}
            assert columns == {"id", "name", "colour"}
            with db_engine.begin() as conn:
                conn.execute(insert(Item).values(id=2, name="again", colour="red"))
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert project.databases() == {name}
    assert project.query("SELECT id, name, colour FROM items") == []
    project.execute("INSERT INTO items (id, name, colour) VALUES (2, 'again', 'red')")

    # --alchemy-create-db rebuilds even with --alchemy-reuse-db and an unchanged schema.
    project.replace_tests(
        "test_run4.py",
        """
        from sqlalchemy import insert, select
        from models import Item

        def test_fresh(db_engine):
            with db_engine.connect() as conn:
                assert conn.execute(select(Item.id)).all() == []
            with db_engine.begin() as conn:
                conn.execute(insert(Item).values(id=3, name="third"))
        """,
    )
    project.run("--alchemy-reuse-db", "--alchemy-create-db").assert_outcomes(passed=1)
    assert project.databases() == {name}
    assert project.query("SELECT id FROM items") == []
    project.execute("INSERT INTO items (id, name) VALUES (3, 'third')")

    # --alchemy-create-db alone rebuilds the kept database, then drops it.
    project.replace_tests(
        "test_run5.py",
        """
        from sqlalchemy import select
        from models import Item

        def test_fresh_again(db_connection):
            assert db_connection.execute(select(Item.id)).all() == []
        """,
    )
    project.run("--alchemy-create-db").assert_outcomes(passed=1)
    assert project.databases() == set()


def test_plain_run_rebuilds_and_drops_a_kept_database(project: Project) -> None:
    items_project(project)
    project.replace_tests(
        "test_keep.py",
        """
        from sqlalchemy import insert
        from models import Item

        def test_write(db_engine):
            with db_engine.begin() as conn:
                conn.execute(insert(Item).values(id=1, name="kept"))
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert project.query("SELECT id FROM items") == []
    project.execute("INSERT INTO items (id, name) VALUES (1, 'kept')")

    project.replace_tests(
        "test_plain_run.py",
        """
        from sqlalchemy import select
        from models import Item

        def test_fresh(db_connection):
            assert db_connection.execute(select(Item.id)).all() == []
        """,
    )
    project.run().assert_outcomes(passed=1)
    assert project.databases() == set()


# -- xdist --------------------------------------------------------------------------------------

XDIST_TESTS = """
import os
import pytest
from pathlib import Path
from sqlalchemy import insert, select
from helpers import name_of
from models import Item

@pytest.mark.parametrize("n", range(8))
def test_own_database(db_engine, db_session, n):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    name = name_of(db_engine.url)
    assert name == BASE_NAME + "_" + worker
    seen = Path(__file__).parent / "seen"
    seen.mkdir(exist_ok=True)
    (seen / f"{n}.txt").write_text(name)
    assert db_session.scalars(select(Item)).all() == []
    db_session.add(Item(id=n, name="x"))
    db_session.commit()
"""


def _seen(project: Project) -> set[str]:
    return {p.read_text() for p in (project.path / "seen").glob("*.txt")}


def test_xdist_workers_get_their_own_databases(project: Project) -> None:
    items_project(project)
    name = project.test_db_name()
    project.write("test_xdist.py", XDIST_TESTS.replace("BASE_NAME", repr(name)))
    result = project.run_subprocess("-n", "2")
    result.assert_outcomes(passed=8)
    assert "one per xdist worker, suffixed _gw<N>" in result.stdout.str()
    assert _seen(project) == {f"{name}_gw0", f"{name}_gw1"}
    assert project.databases() == set()


def test_xdist_with_reuse_keeps_each_workers_database(project: Project) -> None:
    items_project(project)
    name = project.test_db_name()
    project.write("test_xdist.py", XDIST_TESTS.replace("BASE_NAME", repr(name)))
    project.run_subprocess("-n", "2", "--alchemy-reuse-db").assert_outcomes(passed=8)
    assert _seen(project) == {f"{name}_gw0", f"{name}_gw1"}
    assert project.databases() == {f"{name}_gw0", f"{name}_gw1"}
    for worker in ("gw0", "gw1"):
        assert project.query("SELECT COUNT(*) FROM items", name=f"{name}_{worker}") == [(0,)]


# -- safety ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [[], ["--alchemy-reuse-db"], ["--alchemy-create-db"]], ids=["plain", "reuse", "create"]
)
def test_unmarked_database_with_the_test_name_is_never_touched(
    project: Project, args: list[str]
) -> None:
    items_project(project)
    name = project.test_db_name()
    project.backend.create_foreign(project.path, name)
    project.write(
        "test_db.py",
        """
        def test_db(db_session):
            raise AssertionError("must not run on a database that is not ours")
        """,
    )
    result = project.run(*args)
    text = output(result)
    assert result.ret != 0
    assert f"{name!r}" in text
    assert "not created by pytest-alchemy" in text
    assert "Traceback" not in text
    assert "must not run" not in text
    assert project.databases() == {name}
    assert project.query("SELECT id FROM precious", name=name) == [(42,)]


def test_unmarked_worker_database_is_never_touched(project: Project) -> None:
    items_project(project)
    name = project.test_db_name()
    project.backend.create_foreign(project.path, f"{name}_gw0")
    project.write("test_xdist.py", XDIST_TESTS.replace("BASE_NAME", repr(name)))
    result = project.run_subprocess("-n", "2")
    text = output(result)
    assert result.ret != 0
    assert f"{name + '_gw0'!r}" in text
    assert "not created by pytest-alchemy" in text
    assert "Traceback" not in text
    assert _seen(project) <= {f"{name}_gw1"}
    assert project.databases() == {f"{name}_gw0"}
    assert project.query("SELECT id FROM precious", name=f"{name}_gw0") == [(42,)]


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_base_database_is_never_dropped(project: Project) -> None:
    items_project(project)
    args: list[str] = []
    if project.backend.name == "sqlite":
        # The base database of a SQLite URL is the application's file.
        base_url = f"sqlite:///{project.path / 'app.db'}"
        engine = create_engine(base_url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE precious (id INTEGER PRIMARY KEY)")
            conn.exec_driver_sql("INSERT INTO precious (id) VALUES (42)")
        engine.dispose()
        args = ["--alchemy-url", base_url]
        expected = "test_app"
    else:
        project.backend.create_foreign(project.path, project.backend.base)
        base_url = project.backend.test_db_url(project.path, project.backend.base)
        expected = project.test_db_name()
    project.write(
        "test_db.py",
        f"""
        from sqlalchemy import select
        from helpers import name_of
        from models import Item

        def test_db(db_session):
            assert name_of(db_session.get_bind().engine.url) == {expected!r}
            db_session.add(Item(id=1, name="x"))
            db_session.commit()
            assert db_session.scalars(select(Item.id)).all() == [1]
        """,
    )
    for extra in ([], ["--alchemy-create-db"]):
        project.run(*args, *extra).assert_outcomes(passed=1)
    # The test database is gone; the base one is there, untouched.
    if project.backend.name == "sqlite":
        assert project.databases() == set()
    else:
        assert project.databases() == {project.backend.base}
    assert _tables(base_url) == {"precious"}
    engine = create_engine(base_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT id FROM precious").all() == [(42,)]
    finally:
        engine.dispose()


# -- the header ------------------------------------------------------------------------------


def _header(project: Project, url: str | None = None) -> str:
    """The header line the plugin should print for this project's test database."""
    if project.backend.name == "sqlite":
        path = sqlite_dir(project.path) / "test_alchemy.db"
        return f"alchemy: sqlite test database sqlite:///{path} [from the default SQLite URL]"
    parsed = make_url(url or project.backend.url or "")
    test_url = parsed.set(database=project.test_db_name())
    return (
        f"alchemy: {parsed.get_backend_name()} test database "
        f"{test_url.render_as_string(hide_password=True)} [from --alchemy-url]"
    )


def test_header_names_backend_and_test_database(models_project: Project) -> None:
    models_project.write(
        "test_db.py",
        """
        def test_db(db_session):
            assert db_session is not None
        """,
    )
    result = models_project.run()
    result.assert_outcomes(passed=1)
    assert _header(models_project) in result.outlines


PASSWORD = "Sw0rdf1sh-xyzzy"


@pytest.mark.backends("postgresql", "mariadb")
def test_header_never_shows_the_password(project: Project) -> None:
    items_project(project)
    url = make_url(project.backend.url or "").set(password=PASSWORD)
    rendered = url.render_as_string(hide_password=False)
    assert PASSWORD in rendered
    project.write(
        "test_plain.py",
        """
        def test_plain():
            assert True
        """,
    )
    result = project.run("--alchemy-url", rendered, "--collect-only")
    assert result.ret == 0
    text = output(result)
    assert _header(project, rendered) in result.outlines
    assert ":***@" in text
    assert PASSWORD not in text
    assert project.databases() == set()


@pytest.mark.backends("postgresql", "mariadb")
def test_password_never_shown_when_connecting(project: Project) -> None:
    """PostgreSQL (trust authentication) ignores the password and the run passes; MariaDB
    refuses it, and the message says so without showing it."""
    items_project(project)
    url = make_url(project.backend.url or "").set(password=PASSWORD)
    rendered = url.render_as_string(hide_password=False)
    project.write(
        "test_db.py",
        """
        def test_db(db_session):
            assert db_session is not None
        """,
    )
    result = project.run("--alchemy-url", rendered)
    text = output(result)
    assert PASSWORD not in text
    assert ":***@" in text
    if project.backend.name == "postgresql":
        result.assert_outcomes(passed=1)
    else:
        assert result.ret != 0
        assert "authentication failed for user 'root'" in text
        assert "Traceback" not in text
    assert project.databases() == set()


# -- PostgreSQL: leftover sessions ---------------------------------------------------------


@pytest.mark.backends("postgresql")
def test_leftover_session_does_not_stop_the_drop(project: Project) -> None:
    items_project(project)
    project.write(
        "conftest.py",
        """
        LEFTOVER = []

        def pytest_unconfigure(config):
            # Only after the plugin's drop at the end of the session.
            for conn in LEFTOVER:
                conn.close()
        """,
    )
    project.write(
        "test_leftover.py",
        """
        import psycopg
        from sqlalchemy import text
        import conftest

        def test_leaves_a_session_open(db_engine, db_connection):
            url = db_engine.url
            conn = psycopg.connect(
                host=url.host, port=url.port, user=url.username, dbname=url.database,
                autocommit=True,
            )
            conftest.LEFTOVER.append(conn)
            sessions = db_connection.scalar(text(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
            ))
            assert sessions >= 2
        """,
    )
    project.run().assert_outcomes(passed=1)
    assert project.databases() == set()


# -- SQLite savepoints ------------------------------------------------------------------------


def test_savepoint_rollback_after_commit_leaves_nothing(project: Project) -> None:
    """With the stdlib SQLite driver, a SAVEPOINT without BEGIN commits for real; the
    plugin takes over transaction control so that it does not."""
    items_project(project)
    project.write(
        "test_savepoint.py",
        """
        from sqlalchemy import select
        from models import Item

        def test_commit_then_rolled_back_savepoint(db_session):
            db_session.add(Item(id=1, name="committed"))
            db_session.commit()
            savepoint = db_session.begin_nested()
            db_session.add(Item(id=2, name="undone"))
            db_session.flush()
            savepoint.rollback()
            assert db_session.scalars(select(Item.name)).all() == ["committed"]
            db_session.commit()

        def test_next_test_sees_nothing(db_session):
            assert db_session.scalars(select(Item)).all() == []
        """,
    )
    project.run("--alchemy-reuse-db", "-p", "no:randomly").assert_outcomes(passed=2)
    assert project.query("SELECT COUNT(*) FROM items") == [(0,)]


# -- what the run did, in the terminal summary ------------------------------------------------


def summary_lines(result: pytest.RunResult) -> list[str]:
    """The plugin's summary lines: ``alchemy: ...`` lines other than the header's."""
    return [
        line
        for line in result.stdout.lines
        if line.startswith("alchemy: ") and not line.endswith("]")
    ]


def test_terminal_summary_says_what_happened_to_the_database(project: Project) -> None:
    items_project(project)
    name = project.test_db_name()
    uses_db = "def test_db(db_session):\n    pass\n"
    runs = [
        # (new test module, options, the summary's last words)
        ("test_a.py", (), "created"),
        ("test_b.py", ("--alchemy-reuse-db",), "created"),
        ("test_c.py", ("--alchemy-reuse-db",), "reused"),
        (
            "test_d.py",
            ("--alchemy-reuse-db", "--alchemy-create-db"),
            "rebuilt (--alchemy-create-db)",
        ),
    ]
    for module, options, outcome in runs:
        project.replace_tests(module, uses_db)
        result = project.run(*options)
        result.assert_outcomes(passed=1)
        lines = summary_lines(result)
        assert len(lines) == 1, result.stdout.str()
        assert lines[0].startswith("alchemy: ") and " test database " in lines[0]
        assert name in lines[0]
        assert lines[0].endswith(f" {outcome}"), lines[0]

    # A changed schema.
    items_project(project, colour=True)
    project.replace_tests("test_e.py", uses_db)
    result = project.run("--alchemy-reuse-db")
    assert summary_lines(result)[0].endswith(" rebuilt (changed: metadata)")

    # A run that marks the database dirty (as when a test broke isolation): the next reuse
    # run rebuilds it.
    project.replace_tests(
        "test_f.py",
        """
        def test_marks_dirty(db_session, _alchemy_database):
            _alchemy_database.mark_dirty()
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    project.replace_tests("test_g.py", uses_db)
    result = project.run("--alchemy-reuse-db")
    assert summary_lines(result)[0].endswith(" rebuilt (left dirty by an earlier run)")
    result = project.run("--alchemy-reuse-db")
    assert summary_lines(result)[0].endswith(" reused")

    # A kept database, then a plain run: rebuilt, then dropped.
    result = project.run()
    assert summary_lines(result)[0].endswith(" rebuilt (left by an earlier run)")
    assert project.databases() == set()

    # No database used: no summary line.
    project.replace_tests("test_h.py", "def test_nothing():\n    pass\n")
    result = project.run()
    result.assert_outcomes(passed=1)
    assert summary_lines(result) == []


def test_terminal_summary_under_xdist_does_not_fail(project: Project) -> None:
    items_project(project)
    project.replace_tests("test_x.py", "def test_db(db_session):\n    pass\n")
    result = project.run_subprocess("-n", "2")
    result.assert_outcomes(passed=1)
    assert "INTERNALERROR" not in output(result)
