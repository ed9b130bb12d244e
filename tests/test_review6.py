"""Defects found reviewing issue 6 (branch review6): each test fails against the code
as merged, and says what should happen instead."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from test_alembic_options import write_bare
from test_schema import REV2, REV3, alembic_project

from conftest import Project, output

# -- Alembic: a branch that depends_on another branch ----------------------------------------


def test_heads_with_depends_on_are_accepted(project: Project) -> None:
    """``depends_on`` makes one head an ancestor of the other: after ``alembic upgrade
    heads`` the version table holds only the dependent head (``alembic current`` shows the
    other as "effective head"). The plugin compares the version table with the heads as a
    set, and stops the run blaming env.py."""
    alembic_project(project)
    write_bare(
        project,
        REV3,
        REV2,
        '    op.create_table("left_t", sa.Column("id", sa.Integer, primary_key=True))\n',
        labels=("left",),
    )
    rev4 = "4d4d4d4d4d4d"
    project.write(
        f"migrations/versions/{rev4}_rev.py",
        f"""
        import sqlalchemy as sa
        from alembic import op

        revision = {rev4!r}
        down_revision = {REV2!r}
        branch_labels = ("right",)
        depends_on = {REV3!r}

        def upgrade():
            op.create_table("right_t", sa.Column("id", sa.Integer, primary_key=True))

        def downgrade():
            pass
        """,
    )
    project.write(
        "test_heads.py",
        """
        from sqlalchemy import inspect

        def test_both_branches(db_connection):
            assert {"left_t", "right_t"} <= set(inspect(db_connection).get_table_names())
        """,
    )
    result = project.run()
    assert "not at the heads" not in output(result)
    result.assert_outcomes(passed=1)


# -- the `_2` fallback: the guard against unrouted engines follows only the new name ---------

LAZY_APP = """
import os
DATABASE_URL = os.environ["APP_DATABASE_URL"]  # read once, at import, as settings objects do
"""

LAZY_TEST = """
import os, time
from sqlalchemy import create_engine, text
import settings

def test_lazy_engine(db_session):
    db_session.execute(text("select 1"))
    time.sleep(float(os.environ.get("RV_SLEEP", "0")))
    if os.environ.get("RV_WRITE"):
        engine = create_engine(settings.DATABASE_URL)  # made lazily, not routed
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id, email) VALUES (999, 'x')"))
"""


def test_unrouted_engine_cannot_write_into_another_runs_database(project: Project) -> None:
    """A run that took ``test_<base>_2`` because another run holds ``test_<base>``: an
    engine the application made from the URL it read at import (the primary name, set in
    ``alchemy_url_env`` before the claim was taken) is not stopped by the guard (which
    now only knows ``_2``) and commits into the other run's database, which that run keeps
    with --alchemy-reuse-db and marks as fresh. In a run without contention the same
    engine is stopped with an IsolationError."""
    from conftest import MODELS

    project.write("models.py", MODELS)
    project.write("settings.py", LAZY_APP)
    project.ini(alchemy_metadata="models:Base", alchemy_url_env="APP_DATABASE_URL")
    project.write("test_lazy.py", LAZY_TEST)
    args = [*project.backend.args(), "-p", "no:cacheprovider", "-p", "no:randomly"]
    env = {**os.environ, "RV_SLEEP": "8"}
    holder = subprocess.Popen(
        [sys.executable, "-m", "pytest", *args, "--alchemy-reuse-db"],
        cwd=project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(4)  # the holder has claimed test_<base> and sleeps in its test
        env = {**os.environ, "RV_WRITE": "1"}
        second = subprocess.run(
            [sys.executable, "-m", "pytest", *args],
            cwd=project.path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        holder.wait(60)
    assert "is in use by another run" in second.stdout, second.stdout
    # The other run's kept database must not have the row.
    assert project.query("SELECT id FROM users WHERE id = 999") == []
    # And the second run must have been told, as it is without contention.
    assert second.returncode != 0, second.stdout


# -- fingerprint gaps -------------------------------------------------------------------------

SCHEMA_TEST = """
from sqlalchemy import text

def test_where_{n}(db_connection):
    assert db_connection.execute(text("SELECT count(*) FROM users")).scalar() == 0
"""


@pytest.mark.backends("postgresql")
def test_search_path_in_url_options_is_part_of_the_fingerprint(project: Project) -> None:
    """``?options=-csearch_path=...`` decides where create_all puts the tables; changing it
    must rebuild a reused database (today: "reused", and the tables are not found)."""
    from conftest import MODELS

    project.write("models.py", MODELS)
    project.write(
        "prep.py",
        """
        from sqlalchemy import text

        def prepare(conn):
            conn.execute(text("CREATE SCHEMA s1"))
            conn.execute(text("CREATE SCHEMA s2"))
        """,
    )
    project.ini(alchemy_metadata="models:Base", alchemy_prepare_database="prep:prepare")
    url = project.backend.url
    project.replace_tests("test_one.py", SCHEMA_TEST.format(n=1))
    first = project.pytester.runpytest(
        "--alchemy-url", f"{url}?options=-csearch_path%3Ds1", "--alchemy-reuse-db"
    )
    first.assert_outcomes(passed=1)
    project.replace_tests("test_two.py", SCHEMA_TEST.format(n=2))
    second = project.pytester.runpytest(
        "--alchemy-url", f"{url}?options=-csearch_path%3Ds2", "--alchemy-reuse-db"
    )
    assert " reused" not in second.stdout.str()
    second.assert_outcomes(passed=1)


@pytest.mark.backends("postgresql")
def test_prepare_hook_module_constant_is_part_of_the_fingerprint(project: Project) -> None:
    """A prepare hook that reads a constant of its own module (the list of extensions or
    schemas): changing the constant must rebuild, as a changed app constant does for a
    migration (today: "reused", the new schema is missing)."""
    from conftest import MODELS

    project.write("models.py", MODELS)
    project.ini(alchemy_metadata="models:Base", alchemy_prepare_database="prep:prepare")
    for n, schemas in enumerate((["s1"], ["s1", "s2"])):
        project.write(
            "prep.py",
            f"""
            from sqlalchemy import text
            SCHEMAS = {schemas!r}

            def prepare(conn):
                for name in SCHEMAS:
                    conn.execute(text(f"CREATE SCHEMA {{name}}"))
            """,
        )
        project.replace_tests(
            f"test_run{n}.py",
            f"""
            from sqlalchemy import text

            def test_schemas_{n}(db_connection):
                found = db_connection.execute(
                    text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 's_'")
                ).scalars().all()
                assert sorted(found) == {sorted(schemas)!r}
            """,
        )
        project.run_subprocess("--alchemy-reuse-db").assert_outcomes(passed=1)


@pytest.mark.backends("sqlite")
def test_partial_prepare_hook_is_reused(project: Project) -> None:
    """A prepare hook that is a functools.partial (or a callable object) has no readable
    source; its fingerprint falls back to its repr, which holds a memory address, so an
    unchanged project is rebuilt on every run (today: "rebuilt (changed: prepare)")."""
    from conftest import MODELS

    project.write("models.py", MODELS)
    project.write(
        "prep.py",
        """
        import functools

        def _prepare(conn, flag):
            pass

        prepare = functools.partial(_prepare, flag=True)
        """,
    )
    project.ini(alchemy_metadata="models:Base", alchemy_prepare_database="prep:prepare")
    project.write("test_p.py", "def test_p(db_connection):\n    pass\n")
    project.run_subprocess("--alchemy-reuse-db").assert_outcomes(passed=1)
    again = project.run_subprocess("--alchemy-reuse-db")
    again.assert_outcomes(passed=1)
    assert " reused" in again.stdout.str(), again.stdout.str()
