"""The test schema: built by ``alembic upgrade head`` when alchemy_alembic_ini is set (or
from alchemy_metadata with --alchemy-no-migrations), with env.py kept on the test
database and failures told in one message."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from conftest import Project, output

REV1, REV2, REV3 = "1a1a1a1a1a1a", "2b2b2b2b2b2b", "3c3c3c3c3c3c"

ALEMBIC_INI = """
[alembic]
script_location = %(here)s/migrations
path_separator = os
sqlalchemy.url = sqlite:///%(here)s/dev.db

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
level = WARNING
handlers =
qualname = sqlalchemy.engine

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

#: Alembic's documented convention: run on the connection handed over in
#: ``config.attributes["connection"]`` when there is one, else build an engine from
#: ``sqlalchemy.url``.
ENV_PY = """
from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)
target_metadata = None


def run_migrations_offline():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection):
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connectable = config.attributes.get("connection", None)
    if connectable is None:
        connectable = engine_from_config(
            config.get_section(config.config_ini_section, {}),
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
        with connectable.connect() as connection:
            do_run_migrations(connection)
    else:
        do_run_migrations(connectable)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
"""

#: An env.py that ignores both the connection and sqlalchemy.url.
ROGUE_ENV_PY = """
from alembic import context
from sqlalchemy import create_engine, pool

engine = create_engine(DEV_URL, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""

REVISION = '''
"""{doc}"""
import os

import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        {table!r},
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50)),
    )
{extra}

def downgrade():
    op.drop_table({table!r})
'''

#: The metadata: ``authors`` (also in the migrations) and ``meta_only`` (only here).
MODELS = """
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))

class MetaOnly(Base):
    __tablename__ = "meta_only"
    id: Mapped[int] = mapped_column(primary_key=True)
"""


def write_revision(
    project: Project, revision: str, down: str | None, table: str, extra: str = ""
) -> None:
    project.write(
        f"migrations/versions/{revision}_{table}.py",
        REVISION.format(
            doc=f"create {table}", revision=revision, down=down, table=table, extra=extra
        ),
    )


def alembic_project(project: Project, *, env_py: str = ENV_PY, rev2_extra: str = "") -> Project:
    """alembic.ini, env.py and two revisions (``authors``, then ``books``), plus
    ``models.py`` for --alchemy-no-migrations; ini: alchemy_alembic_ini = alembic.ini."""
    project.write("alembic.ini", ALEMBIC_INI)
    project.write("migrations/env.py", env_py)
    write_revision(project, REV1, None, "authors")
    write_revision(project, REV2, REV1, "books", rev2_extra)
    project.write("models.py", MODELS)
    project.ini(alchemy_alembic_ini="alembic.ini", alchemy_metadata="models:Base")
    return project


MIGRATED_TESTS = """
from sqlalchemy import inspect, text

def test_tables(db_connection):
    tables = set(inspect(db_connection).get_table_names())
    assert {"authors", "books", "alembic_version"} <= tables
    assert "meta_only" not in tables

def test_at_head(db_connection):
    versions = db_connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert versions == [(HEAD,)]
"""


def test_schema_is_built_by_alembic_upgrade_head(project: Project) -> None:
    alembic_project(project)
    project.write("test_migrated.py", MIGRATED_TESTS.replace("HEAD", repr(REV2)))
    project.run().assert_outcomes(passed=2)
    assert project.databases() == set()
    assert not (project.path / "dev.db").exists()


def test_alembic_schema_kept_with_reuse_is_at_head(project: Project) -> None:
    alembic_project(project)
    project.write("test_migrated.py", MIGRATED_TESTS.replace("HEAD", repr(REV2)))
    project.run("--alchemy-reuse-db").assert_outcomes(passed=2)
    assert project.databases() == {project.test_db_name()}
    assert project.query("SELECT version_num FROM alembic_version") == [(REV2,)]
    assert project.query("SELECT COUNT(*) FROM books") == [(0,)]


def test_no_migrations_builds_from_metadata(project: Project) -> None:
    alembic_project(project)
    project.write(
        "test_metadata.py",
        """
        from sqlalchemy import inspect

        def test_tables(db_connection):
            tables = set(inspect(db_connection).get_table_names())
            assert {"authors", "meta_only"} <= tables
            assert "books" not in tables
            assert "alembic_version" not in tables
        """,
    )
    project.run("--alchemy-no-migrations").assert_outcomes(passed=1)
    assert project.databases() == set()


def test_env_py_reaching_another_database_is_stopped(project: Project) -> None:
    if project.backend.name == "sqlite":
        dev_path = project.path / "dev.db"
        dev_url = f"sqlite:///{dev_path}"
        target = str(dev_path)
    else:
        # The base database in the URL: not the test database. It exists, with data.
        project.backend.create_foreign(project.path, project.backend.base)
        dev_url = project.backend.url or ""
        target = project.backend.base
    alembic_project(project, env_py=ROGUE_ENV_PY.replace("DEV_URL", repr(dev_url)))
    project.write(
        "test_db.py",
        """
        def test_db(db_session):
            raise AssertionError("must not run")
        """,
    )
    result = project.run()
    text = output(result)
    assert result.ret != 0
    assert str(project.path / "migrations" / "env.py") in text
    assert f"{target!r}" in text
    assert "tried to connect to" in text
    assert "name it in alchemy_url_env (alchemy_async_url_env for an async URL)" in text
    assert "Traceback" not in text
    assert "must not run" not in text
    if project.backend.name == "sqlite":
        assert not (project.path / "dev.db").exists()
        assert project.databases() == set()
    else:
        base = project.backend.base
        assert project.databases() == {base}
        engine = create_engine(project.backend.test_db_url(project.path, base), poolclass=NullPool)
        try:
            assert inspect(engine).get_table_names() == ["precious"]
        finally:
            engine.dispose()
        assert project.query("SELECT id FROM precious", name=base) == [(42,)]


def test_failing_migration_is_named(project: Project) -> None:
    alembic_project(project, rev2_extra='    op.execute("SELECT * FROM no_such_table")\n')
    project.write(
        "test_db.py",
        """
        def test_db(db_session):
            raise AssertionError("must not run")
        """,
    )
    result = project.run()
    text = output(result)
    assert result.ret != 0
    assert f"migration {REV2}" in text
    assert "failed" in text
    assert "no_such_table" in text
    assert "Traceback" not in text
    assert "must not run" not in text
    assert project.databases() == set()


def test_half_built_database_is_not_reused(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    alembic_project(
        project,
        rev2_extra=(
            '    if os.environ.get("BREAK_MIGRATION"):\n'
            '        op.execute("SELECT * FROM no_such_table")\n'
        ),
    )
    project.write("test_migrated.py", MIGRATED_TESTS.replace("HEAD", repr(REV2)))
    monkeypatch.setenv("BREAK_MIGRATION", "1")
    result = project.run("--alchemy-reuse-db")
    assert result.ret != 0
    assert f"migration {REV2}" in output(result)

    # Same files, so the same fingerprint: the half-built database must still be rebuilt.
    monkeypatch.delenv("BREAK_MIGRATION")
    project.run("--alchemy-reuse-db").assert_outcomes(passed=2)
    assert project.databases() == {project.test_db_name()}
    assert project.query("SELECT version_num FROM alembic_version") == [(REV2,)]


def test_reuse_with_alembic_rebuilds_on_a_new_revision(project: Project) -> None:
    alembic_project(project)
    name = project.test_db_name()
    project.replace_tests(
        "test_run1.py",
        """
        from sqlalchemy import text

        def test_write(db_engine):
            with db_engine.begin() as conn:
                conn.execute(text("INSERT INTO authors (id, name) VALUES (1, 'kept')"))
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert project.databases() == {name}
    assert project.query("SELECT id, name FROM authors") == []  # the test's row is undone
    # A row written outside any run tells whether the next run reuses the database.
    project.execute("INSERT INTO authors (id, name) VALUES (1, 'kept')")

    project.replace_tests(
        "test_run2.py",
        """
        from sqlalchemy import text

        def test_still_there(db_connection):
            rows = db_connection.execute(text("SELECT id, name FROM authors")).all()
            assert rows == [(1, "kept")]
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert project.databases() == {name}
    assert project.query("SELECT id, name FROM authors") == [(1, "kept")]

    write_revision(project, REV3, REV2, "reviews")
    project.replace_tests(
        "test_run3.py",
        f"""
        from sqlalchemy import inspect, text

        def test_rebuilt(db_connection):
            assert db_connection.execute(text("SELECT id FROM authors")).all() == []
            assert "reviews" in inspect(db_connection).get_table_names()
            version = db_connection.execute(text("SELECT version_num FROM alembic_version"))
            assert version.all() == [({REV3!r},)]
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert project.databases() == {name}
    assert project.query("SELECT COUNT(*) FROM reviews") == [(0,)]
    assert project.query("SELECT version_num FROM alembic_version") == [(REV3,)]


def test_missing_alembic_ini_is_named(project: Project) -> None:
    alembic_project(project)
    project.ini(alchemy_alembic_ini="config/missing.ini", alchemy_metadata="models:Base")
    project.write(
        "test_db.py",
        """
        def test_db(db_session):
            raise AssertionError("must not run")
        """,
    )
    result = project.run()
    text = output(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "alchemy_alembic_ini" in text
    assert str(project.path / "config" / "missing.ini") in text
    assert "Traceback" not in text
    assert "must not run" not in text
    assert project.databases() == set()


def test_failing_env_py_is_named_with_a_fix(project: Project) -> None:
    alembic_project(project, env_py=ENV_PY + '\nraise RuntimeError("env.py is broken")\n')
    project.write(
        "test_db.py",
        """
        def test_db(db_session):
            raise AssertionError("must not run")
        """,
    )
    result = project.run()
    text = output(result)
    assert result.ret == pytest.ExitCode.INTERRUPTED, text
    env_py = project.path / "migrations" / "env.py"
    assert (
        f"ERROR: pytest-alchemy: 'alembic upgrade heads' failed in the Alembic env.py at "
        f"{env_py}: RuntimeError: env.py is broken\n"
        "Fix: correct it, or build from metadata with --alchemy-no-migrations."
    ) in text
    assert "Traceback" not in text
    assert "must not run" not in text
    assert project.databases() == set()
