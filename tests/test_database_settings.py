"""Per-database settings of the base database are carried over (issue 6, item 10), and
SQLite test files outlive pytest's pruning of its temporary root (item 2)."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy.engine import make_url

from conftest import Project, output
from pytest_alchemy._settings import sqlite_dir
from pytest_alchemy.provision import provisioner_for

#: A table without a schema, and the schema ``app`` created before the tables: with the
#: base database's ``search_path = app, public`` the table lands in ``app``.
APP_SCHEMA = """
    from sqlalchemy import DDL, Integer, event
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    class Base(DeclarativeBase):
        pass

    event.listen(Base.metadata, "before_create", DDL("CREATE SCHEMA IF NOT EXISTS app"))

    class Thing(Base):
        __tablename__ = "things"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
"""

WHERE = """
    from sqlalchemy import text

    def test_search_path(db_session):
        assert db_session.execute(text("SHOW search_path")).scalar() == "app, public"
        db_session.execute(text("INSERT INTO things (id) VALUES (1)"))
"""


def _base_database(project: Project, *statements: str) -> None:
    engine = project.backend.admin_engine()
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{project.backend.base}"')
            for statement in statements:
                conn.exec_driver_sql(statement.format(base=project.backend.base))
    finally:
        engine.dispose()


@pytest.mark.backends("postgresql")
def test_base_database_settings_are_carried_over(project: Project) -> None:
    _base_database(
        project,
        'ALTER DATABASE "{base}" SET search_path = app, public',
        'ALTER ROLE postgres IN DATABASE "{base}" SET statement_timeout = 12345',
    )
    project.write("models.py", APP_SCHEMA)
    project.write("test_where.py", WHERE)
    project.ini(alchemy_metadata="models:Base")
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=1)
    assert project.query(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'things'"
    ) == [("app",)]
    assert project.query("SHOW statement_timeout") == [("12345ms",)]

    url = make_url(project.backend.url or "")
    provisioner = provisioner_for(url, source="test", sqlite_dir=sqlite_dir(project.path))
    try:
        assert provisioner.database_settings() == {
            "search_path": "app, public",
            "statement_timeout for role postgres": "12345",
        }
    finally:
        provisioner.close()


@pytest.mark.backends("postgresql")
def test_no_base_database_means_no_settings(project: Project) -> None:
    url = make_url(project.backend.url or "")
    provisioner = provisioner_for(url, source="test", sqlite_dir=sqlite_dir(project.path))
    try:
        assert provisioner.database_settings() == {}
        provisioner.apply_database_settings("nothing_to_do")  # nothing runs
    finally:
        provisioner.close()


PLAIN = "def test_plain(tmp_path):\n    (tmp_path / 'x').write_text('x')\n"
USES_DB = "def test_db(db_session):\n    pass\n"


@pytest.mark.backends("sqlite")
def test_sqlite_reuse_survives_pytests_temporary_directory_pruning(
    models_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs without --basetemp (as users run pytest) prune old folders under pytest's
    temporary root when they exit; the SQLite test file must not be one of them."""
    project = models_project
    temproot = project.path / "temproot"
    temproot.mkdir()
    monkeypatch.setenv("PYTEST_DEBUG_TEMPROOT", str(temproot))
    project.write("test_db.py", USES_DB)
    project.write("test_plain.py", PLAIN)

    def run(*args: str) -> pytest.RunResult:
        # pytester's own runs pass --basetemp, which turns pruning off: run as users do.
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
        return project.pytester.run(*command)

    run("--alchemy-reuse-db", "test_db.py").assert_outcomes(passed=1)
    for _ in range(4):
        run("test_plain.py").assert_outcomes(passed=1)
    result = run("--alchemy-reuse-db", "test_db.py")
    result.assert_outcomes(passed=1)
    assert "test_alchemy.db reused" in output(result), output(result)
