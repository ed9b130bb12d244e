"""The ownership marker is invisible to the application (issue 6, item 1): SQLite keeps
it in the file header (``PRAGMA application_id``) and a sidecar file, MariaDB in a
database comment (MySQL: a marker table), PostgreSQL in a database comment. Databases
marked the old way (a ``_pytest_alchemy`` table) are still the plugin's, always rebuilt."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from conftest import Project, output, summary
from pytest_alchemy._settings import sqlite_dir
from pytest_alchemy.provision import MARKER_TABLE
from pytest_alchemy.provision._sqlite import APPLICATION_ID, MARKER_SUFFIX

SCHEMA_CHECKS = """
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from models import Base

    def test_only_the_apps_tables(db_connection):
        assert sorted(inspect(db_connection).get_table_names()) == ["posts", "users"]

    def test_models_match_the_database(db_connection):
        assert compare_metadata(MigrationContext.configure(db_connection), Base.metadata) == []
"""

#: A project conftest that makes MariaDB keep its marker as MySQL does (a table).
TABLE_MARKER = """
    import pytest

    from pytest_alchemy.provision import MySQLProvisioner

    @pytest.fixture(scope="session", autouse=True)
    def _marker_table():
        MySQLProvisioner.comment_marker = False  # (in-process runs: restored after)
        yield
        MySQLProvisioner.comment_marker = None
"""


def tables(project: Project) -> list[str]:
    """The tables of the kept test database."""
    if project.backend.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    elif project.backend.name == "postgresql":
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    else:
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
    return sorted(row[0] for row in project.query(sql))


def test_marker_is_invisible_to_the_application(models_project: Project) -> None:
    models_project.write("test_marker_checks.py", SCHEMA_CHECKS)
    result = models_project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=2)
    assert tables(models_project) == ["posts", "users"]
    # ... and the marker is still there: the next run reuses the database.
    result = models_project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=2)
    assert summary(result).endswith(" reused")


@pytest.mark.backends("sqlite")
def test_sqlite_marker_is_the_header_and_a_sidecar(models_project: Project) -> None:
    models_project.write("test_marker_checks.py", SCHEMA_CHECKS)
    models_project.run("--alchemy-reuse-db").assert_outcomes(passed=2)
    assert models_project.query("PRAGMA application_id") == [(APPLICATION_ID,)]
    path = sqlite_dir(models_project.path) / "test_alchemy.db"
    sidecar = path.with_name(path.name + MARKER_SUFFIX)
    marker = json.loads(sidecar.read_text())
    assert marker["owner"] == "pytest-alchemy" and marker["fingerprint"]

    # No readable sidecar: the plugin's database, of unknown content: rebuilt, not reused.
    sidecar.write_text("{not json")
    result = models_project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=2)
    assert summary(result).endswith(" rebuilt (left dirty by an earlier run)")
    sidecar.unlink()
    result = models_project.run("--alchemy-reuse-db")
    assert summary(result).endswith(" rebuilt (left dirty by an earlier run)")

    # Dropped at the end of a run without reuse: the file, its sidecar, its lock and the
    # project's folder.
    models_project.run().assert_outcomes(passed=2)
    assert not path.parent.exists()


@pytest.mark.backends("sqlite")
def test_sqlite_file_with_another_application_id_is_not_ours(models_project: Project) -> None:
    models_project.backend.create_foreign(models_project.path, "test_alchemy")
    models_project.execute("PRAGMA application_id = 1234")
    path = sqlite_dir(models_project.path) / "test_alchemy.db"
    # Even with a sidecar beside it: the header decides.
    path.with_name(path.name + MARKER_SUFFIX).write_text(
        json.dumps({"owner": "pytest-alchemy", "fingerprint": None})
    )
    models_project.write("test_marker_checks.py", SCHEMA_CHECKS)
    result = models_project.run("--alchemy-reuse-db")
    assert "was not created by pytest-alchemy" in output(result)
    assert models_project.query("SELECT id FROM precious") == [(42,)]


@pytest.mark.backends("mariadb")
def test_mariadb_marker_is_a_database_comment(models_project: Project) -> None:
    models_project.write("test_marker_checks.py", SCHEMA_CHECKS)
    models_project.run("--alchemy-reuse-db").assert_outcomes(passed=2)
    comment = models_project.query(
        "SELECT schema_comment FROM information_schema.schemata WHERE schema_name = DATABASE()"
    )[0][0]
    assert json.loads(comment)["owner"] == "pytest-alchemy"


@pytest.mark.backends("mariadb")
def test_mysql_fallback_keeps_a_marker_table(models_project: Project) -> None:
    """MySQL has no database comments: the marker table stays there (chosen here on
    MariaDB by the class attribute the server version otherwise decides)."""
    models_project.write("conftest.py", TABLE_MARKER)
    models_project.write("test_reuse.py", "def test_db(db_session):\n    pass\n")
    models_project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert tables(models_project) == [MARKER_TABLE, "posts", "users"]
    assert json.loads(models_project.query(f"SELECT marker FROM {MARKER_TABLE}")[0][0])
    result = models_project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=1)
    assert summary(result).endswith(" reused")
    models_project.run().assert_outcomes(passed=1)
    assert models_project.databases() == set()


def make_old_style(project: Project) -> None:
    """A test database marked the way pytest-alchemy 0.2 did: a ``_pytest_alchemy`` table
    holding the JSON marker (fingerprint as the plugin would compute it now)."""
    backend = project.backend
    name = project.test_db_name()
    if backend.name != "sqlite":
        engine = backend.admin_engine()
        with engine.connect() as conn:
            conn.exec_driver_sql(
                f"CREATE DATABASE {engine.dialect.identifier_preparer.quote(name)}"
            )
        engine.dispose()
    else:
        sqlite_dir(project.path).mkdir(parents=True, exist_ok=True)
    engine = create_engine(backend.test_db_url(project.path), poolclass=NullPool)
    marker = json.dumps({"owner": "pytest-alchemy", "fingerprint": {"metadata": "0" * 16}})
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {MARKER_TABLE} (id INTEGER PRIMARY KEY, marker TEXT NOT NULL)"
        )
        conn.execute(text(f"INSERT INTO {MARKER_TABLE} VALUES (1, :m)"), {"m": marker})
        conn.exec_driver_sql("CREATE TABLE stale (id INTEGER PRIMARY KEY)")
    engine.dispose()


@pytest.mark.backends("sqlite", "mariadb")
def test_database_marked_the_old_way_is_ours_and_rebuilt(models_project: Project) -> None:
    make_old_style(models_project)
    models_project.write("test_marker_checks.py", SCHEMA_CHECKS)
    result = models_project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=2)
    assert summary(result).endswith(" rebuilt (built by an older pytest-alchemy)")
    assert tables(models_project) == ["posts", "users"]
    result = models_project.run("--alchemy-reuse-db")
    assert summary(result).endswith(" reused")


@pytest.mark.backends("sqlite", "mariadb")
def test_old_marker_table_of_another_owner_is_not_ours(models_project: Project) -> None:
    make_old_style(models_project)
    models_project.execute(f'UPDATE {MARKER_TABLE} SET marker = \'{{"owner": "me"}}\'')
    models_project.write("test_marker_checks.py", SCHEMA_CHECKS)
    result = models_project.run("--alchemy-reuse-db")
    assert "was not created by pytest-alchemy" in output(result)
    assert tables(models_project) == [MARKER_TABLE, "stale"]
