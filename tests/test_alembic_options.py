"""Alembic run as projects configure it: several heads, a custom version table, the
transaction mode env.py chooses, configuration in pyproject.toml, paths relative to the
ini, a fingerprint that sees the modules migrations import, and errors that name the true
cause. Where the plugin must do what plain ``alembic upgrade head`` does, the test runs
plain Alembic on a scratch database too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import alembic.config
import pytest
from sqlalchemy.engine import make_url
from test_schema import ALEMBIC_INI, ENV_PY, REV1, REV2, REV3, alembic_project, write_revision

from conftest import Project, output, summary

MUST_NOT_RUN = """
def test_db(db_session):
    raise AssertionError("must not run")
"""

#: A bare revision: ``{body}`` is the upgrade's body (indented 4).
BARE_REVISION = '''
"""{doc}"""
import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = {labels!r}
depends_on = None


def upgrade():
{body}

def downgrade():
    pass
'''


def write_bare(
    project: Project,
    revision: str,
    down: str | None,
    body: str,
    *,
    labels: tuple[str, ...] | None = None,
    folder: str = "migrations/versions",
) -> None:
    project.write(
        f"{folder}/{revision}_rev.py",
        BARE_REVISION.format(
            doc=f"rev {revision}", revision=revision, down=down, labels=labels, body=body
        ),
    )


def plain_alembic_upgrade(project: Project, env_ini: str = "alembic.ini") -> None:
    """Run plain ``alembic upgrade head`` on a scratch database (``<base>_plain``, dropped
    with the test's others), from the ini's directory: it must succeed."""
    backend = project.backend
    assert backend.server_url is not None
    name = f"{backend.base}_plain"
    admin = backend.admin_engine()
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    url = make_url(backend.server_url).set(database=name).render_as_string(False)
    ini = (project.path / env_ini).read_text()
    plain = project.path / "plain.ini"
    plain.write_text(ini.replace("sqlite:///%(here)s/dev.db", url.replace("%", "%%")))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(plain), "upgrade", "head"],
            cwd=project.path,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        plain.unlink()
    assert done.returncode == 0, done.stderr


# -- 4. several heads ----------------------------------------------------------------------


def test_all_heads_are_migrated(project: Project) -> None:
    alembic_project(project)
    # Two branches from REV2, each with a label (intentional branches).
    write_bare(
        project,
        REV3,
        REV2,
        '    op.create_table("left_t", sa.Column("id", sa.Integer, primary_key=True))\n',
        labels=("left",),
    )
    rev4 = "4d4d4d4d4d4d"
    write_bare(
        project,
        rev4,
        REV2,
        '    op.create_table("right_t", sa.Column("id", sa.Integer, primary_key=True))\n',
        labels=("right",),
    )
    project.write(
        "test_heads.py",
        f"""
        from sqlalchemy import inspect, text

        def test_both_branches(db_connection):
            assert {{"left_t", "right_t"}} <= set(inspect(db_connection).get_table_names())
            rows = db_connection.execute(text("SELECT version_num FROM alembic_version"))
            assert sorted(r[0] for r in rows) == sorted([{REV3!r}, {rev4!r}])
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    versions = project.query("SELECT version_num FROM alembic_version")
    assert sorted(v[0] for v in versions) == sorted([REV3, rev4])


def test_heads_with_depends_on_are_accepted(project: Project) -> None:
    """``depends_on`` makes one head an ancestor of the other: after ``alembic upgrade
    heads`` the version table holds only the dependent head (``alembic current`` shows the
    other as "effective head"); the database is at all the heads."""
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
    result = project.run("--alchemy-reuse-db")
    assert "does not reach the heads" not in output(result)
    result.assert_outcomes(passed=1)
    assert project.query("SELECT version_num FROM alembic_version") == [(rev4,)]


def test_a_head_not_reached_is_told(tmp_path: Path) -> None:
    """The rule behind the check: a head counts as reached when it is in the version table
    or an ancestor of a revision there, through down_revision or depends_on."""
    from alembic.script import ScriptDirectory

    from pytest_alchemy.schema._alembic import _reached

    versions = tmp_path / "versions"
    versions.mkdir()
    graph = {"a": (None, None), "b": ("a", None), "c": ("b", None), "d": ("b", "c")}
    graph["e"] = ("b", None)
    for revision, (down, depends) in graph.items():
        (versions / f"{revision}.py").write_text(
            f"revision = {revision!r}\ndown_revision = {down!r}\n"
            f"branch_labels = None\ndepends_on = {depends!r}\n"
        )
    scripts = ScriptDirectory(str(tmp_path), version_locations=[str(versions)])
    heads = set(scripts.get_heads())
    assert heads == {"c", "d", "e"}
    assert heads - _reached(scripts, {"d"}) == {"e"}  # c only through depends_on
    assert heads - _reached(scripts, {"d", "e"}) == set()
    assert heads - _reached(scripts, {"c", "e"}) == {"d"}
    assert heads - _reached(scripts, {"unknown"}) == heads
    assert _reached(scripts, set()) == set()


# -- 5. the version table env.py configures --------------------------------------------------


def test_custom_version_table(project: Project) -> None:
    env_py = ENV_PY.replace(
        "context.configure(connection=connection, target_metadata=target_metadata)",
        "context.configure(connection=connection, target_metadata=target_metadata, "
        'version_table="schema_migrations")',
    )
    alembic_project(project, env_py=env_py)
    project.write(
        "test_version.py",
        f"""
        from sqlalchemy import inspect, text

        def test_at_head(db_connection):
            tables = set(inspect(db_connection).get_table_names())
            assert "alembic_version" not in tables
            rows = db_connection.execute(text("SELECT version_num FROM schema_migrations"))
            assert rows.all() == [({REV2!r},)]
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert project.query("SELECT version_num FROM schema_migrations") == [(REV2,)]


#: env.py keeping its version table in schema "meta", which it creates first (and
#: commits, as plain ``alembic upgrade`` needs under SQLAlchemy 2).
META_ENV_PY = ENV_PY.replace(
    "def do_run_migrations(connection):\n",
    "def do_run_migrations(connection):\n"
    '    connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS meta")\n'
    "    connection.commit()\n",
).replace(
    "context.configure(connection=connection, target_metadata=target_metadata)",
    "context.configure(connection=connection, target_metadata=target_metadata, "
    'version_table_schema="meta")',
)


@pytest.mark.backends("postgresql")
def test_version_table_in_another_schema(project: Project) -> None:
    alembic_project(project, env_py=META_ENV_PY)
    plain_alembic_upgrade(project)
    project.write(
        "test_version.py",
        f"""
        from sqlalchemy import text

        def test_at_head(db_connection):
            rows = db_connection.execute(text("SELECT version_num FROM meta.alembic_version"))
            assert rows.all() == [({REV2!r},)]
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert project.query("SELECT version_num FROM meta.alembic_version") == [(REV2,)]
    assert project.query("SELECT to_regclass('public.alembic_version')") == [(None,)]


# -- 6. the transaction mode env.py chooses (PostgreSQL) --------------------------------------


@pytest.mark.backends("postgresql")
def test_transaction_per_migration_commits_a_new_enum_value(project: Project) -> None:
    env_py = ENV_PY.replace(
        "context.configure(connection=connection, target_metadata=target_metadata)",
        "context.configure(connection=connection, target_metadata=target_metadata, "
        "transaction_per_migration=True)",
    )
    project.write("alembic.ini", ALEMBIC_INI)
    project.write("migrations/env.py", env_py)
    project.ini(alchemy_alembic_ini="alembic.ini")
    write_bare(
        project,
        REV1,
        None,
        "\n".join(
            [
                "    op.execute(\"CREATE TYPE mood AS ENUM ('happy')\")",
                '    op.execute("CREATE TABLE people (id integer PRIMARY KEY, mood mood)")',
            ]
        )
        + "\n",
    )
    write_bare(project, REV2, REV1, "    op.execute(\"ALTER TYPE mood ADD VALUE 'sad'\")\n")
    write_bare(
        project, REV3, REV2, "    op.execute(\"INSERT INTO people (id, mood) VALUES (1, 'sad')\")\n"
    )
    plain_alembic_upgrade(project)
    project.write(
        "test_enum.py",
        """
        from sqlalchemy import text

        def test_enum(db_connection):
            rows = db_connection.execute(text("SELECT mood::text FROM people")).all()
            assert rows == [("sad",)]
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert project.query("SELECT enum_range(NULL::mood)::text") == [("{happy,sad}",)]


@pytest.mark.backends("postgresql")
def test_autocommit_block_creates_an_index_concurrently(project: Project) -> None:
    alembic_project(project)
    write_bare(
        project,
        REV3,
        REV2,
        "\n".join(
            [
                "    with op.get_context().autocommit_block():",
                '        op.create_index("ix_books_name", "books", ["name"], '
                "postgresql_concurrently=True)",
            ]
        )
        + "\n",
    )
    plain_alembic_upgrade(project)
    project.write(
        "test_index.py",
        """
        from sqlalchemy import inspect

        def test_index(db_connection):
            names = [i["name"] for i in inspect(db_connection).get_indexes("books")]
            assert names == ["ix_books_name"]
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert project.query(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_books_name'::regclass"
    ) == [(True,)]


# -- 8. configuration in pyproject.toml ------------------------------------------------------

PYPROJECT = """
[project]
name = "someapp"
version = "0"

[tool.alembic]
script_location = "%(here)s/migrations"
prepend_sys_path = ["."]
"""

#: What ``alembic init -t pyproject`` leaves in alembic.ini: the URL and logging.
PYPROJECT_INI = ALEMBIC_INI.replace("script_location = %(here)s/migrations\n", "").replace(
    "path_separator = os\n", ""
)


def pyproject_project(project: Project, setting: str) -> Project:
    alembic_project(project)
    project.write("pyproject.toml", PYPROJECT)
    project.write("alembic.ini", PYPROJECT_INI)
    project.ini(alchemy_alembic_ini=setting)
    project.write(
        "test_migrated.py",
        f"""
        from sqlalchemy import text

        def test_at_head(db_connection):
            rows = db_connection.execute(text("SELECT version_num FROM alembic_version"))
            assert rows.all() == [({REV2!r},)]
        """,
    )
    return project


needs_toml = pytest.mark.skipif(
    not hasattr(alembic.config.Config, "toml_alembic_config"),
    reason="Alembic reads pyproject.toml from version 1.16 on",
)


@needs_toml
@pytest.mark.parametrize("setting", ["pyproject.toml", "alembic.ini", "."])
def test_configuration_in_pyproject_toml(project: Project, setting: str) -> None:
    pyproject_project(project, setting)
    project.run().assert_outcomes(passed=1)
    assert project.databases() == set()
    assert not (project.path / "dev.db").exists()


@needs_toml
@pytest.mark.backends("sqlite")
def test_pyproject_toml_alone(project: Project) -> None:
    pyproject_project(project, "pyproject.toml")
    (project.path / "alembic.ini").unlink()
    project.run().assert_outcomes(passed=1)


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("pyproject.toml", "[tool.alembic\nscript_location = 1\n", "is not valid TOML"),
        ("pyproject.toml", "[tool.other]\nx = 1\n", "has no [tool.alembic] table"),
        ("settings.ini", "script_location = migrations\n", "is not an ini file Alembic can read"),
        ("alembic.toml", "[tool.alembic]\nx = 1\n", "only from a file called pyproject.toml"),
    ],
)
def test_malformed_configuration_is_told(
    project: Project, name: str, content: str, words: str
) -> None:
    alembic_project(project)
    project.write(f"conf/{name}", content)
    project.ini(alchemy_alembic_ini=f"conf/{name}")
    project.write("test_db.py", MUST_NOT_RUN)
    result = project.run()
    text = output(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert words in text
    assert str(project.path / "conf" / name) in text
    assert "alchemy_alembic_ini" in text
    assert "Traceback" not in text
    assert "must not run" not in text
    assert project.databases() == set()


# -- 9. a subdirectory layout (the FastAPI template) -----------------------------------------

#: Relative paths throughout; ``path_separator = space`` reads the same on every Alembic
#: version (older ones split on spaces by default and ignore the setting).
FASTAPI_INI = (
    ALEMBIC_INI.replace("script_location = %(here)s/migrations", "script_location = app/alembic")
    .replace("path_separator = os", "path_separator = space")
    .replace(
        "sqlalchemy.url = sqlite:///%(here)s/dev.db",
        "prepend_sys_path = .\n"
        "version_locations = app/alembic/versions app/alembic/extra\n"
        "sqlalchemy.url = sqlite:///dev.db",
    )
)

FASTAPI_ENV_PY = ENV_PY.replace(
    "target_metadata = None", "from app.models import Base\n\ntarget_metadata = Base.metadata"
)

APP_MODELS = """
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .seeds import COLOURS  # noqa: F401

class Base(DeclarativeBase):
    pass

class Colour(Base):
    __tablename__ = "colours"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
"""

SEED_REVISION_BODY = """\
    from app.seeds import COLOURS

    table = op.create_table(
        "colours",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50)),
    )
    op.bulk_insert(table, [{"id": i, "name": n} for i, n in enumerate(COLOURS, 1)])
"""


def fastapi_project(project: Project, colours: list[str]) -> Project:
    """backend/alembic.ini (paths relative to backend/), backend/app/, pytest run from
    the repository root with alchemy_alembic_ini = backend/alembic.ini."""
    project.write("backend/alembic.ini", FASTAPI_INI)
    project.write("backend/app/__init__.py", "")
    project.write("backend/app/models.py", APP_MODELS)
    project.write("backend/app/seeds.py", f"COLOURS = {colours!r}\n")
    project.write("backend/app/alembic/env.py", FASTAPI_ENV_PY)
    write_bare(project, REV1, None, SEED_REVISION_BODY, folder="backend/app/alembic/versions")
    write_bare(
        project,
        REV2,
        REV1,
        '    op.create_table("extra_t", sa.Column("id", sa.Integer, primary_key=True))\n',
        folder="backend/app/alembic/extra",
    )
    project.ini(alchemy_alembic_ini="backend/alembic.ini")
    return project


def colours_tests(colours: list[str], run: int) -> str:
    return f"""
        import sys
        from pathlib import Path

        from sqlalchemy import inspect, text

        def test_seeded_{run}(db_connection):
            rows = db_connection.execute(text("SELECT name FROM colours ORDER BY id"))
            assert [r[0] for r in rows] == {colours!r}
            assert "extra_t" in inspect(db_connection).get_table_names()

        def test_sys_path_restored_{run}():
            assert str(Path("backend").resolve()) not in sys.path
        """


def test_subdirectory_layout(project: Project) -> None:
    fastapi_project(project, ["red", "green"])
    project.write("test_app.py", colours_tests(["red", "green"], 1))
    project.run().assert_outcomes(passed=2)
    assert project.databases() == set()
    assert not (project.path / "dev.db").exists()
    assert not (project.path / "backend" / "dev.db").exists()


# -- 3. the fingerprint sees the modules migrations import -----------------------------------


def test_reuse_rebuilds_when_an_imported_module_changes(project: Project) -> None:
    fastapi_project(project, ["red", "green"])
    project.replace_tests("test_run1.py", colours_tests(["red", "green"], 1))
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=2)
    assert summary(result).endswith(" created")

    project.replace_tests("test_run2.py", colours_tests(["red", "green"], 2))
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=2)
    assert summary(result).endswith(" reused")

    project.write("backend/app/seeds.py", 'COLOURS = ["red", "green", "blue"]\n')
    project.replace_tests("test_run3.py", colours_tests(["red", "green", "blue"], 3))
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=2)
    assert summary(result).endswith(" rebuilt (changed: imported modules)")
    assert project.query("SELECT name FROM colours ORDER BY id") == [
        ("red",),
        ("green",),
        ("blue",),
    ]


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(
    ("change", "part"),
    [
        ("env.py", "env.py"),
        ("ini", "alembic config"),
        ("revision", "migrations"),
    ],
)
def test_reuse_names_the_changed_part(project: Project, change: str, part: str) -> None:
    fastapi_project(project, ["red"])
    project.replace_tests("test_run1.py", colours_tests(["red"], 1))
    project.run("--alchemy-reuse-db").assert_outcomes(passed=2)
    ini = project.path / "backend" / "alembic.ini"
    if change == "env.py":
        env_py = project.path / "backend/app/alembic/env.py"
        env_py.write_text(env_py.read_text() + "\n# changed\n")
    elif change == "ini":
        ini.write_text(ini.read_text().replace("level = WARNING", "level = ERROR", 1))
    else:
        write_bare(project, REV3, REV2, "    pass\n", folder="backend/app/alembic/extra")
    project.replace_tests("test_run2.py", colours_tests(["red"], 2))
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=2)
    assert summary(result).endswith(f" rebuilt (changed: {part})")

    # The URL in the ini is the plugin's to replace: changing it changes nothing.
    ini.write_text(ini.read_text().replace("sqlite:///dev.db", "sqlite:///other.db"))
    project.replace_tests("test_run3.py", colours_tests(["red"], 3))
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=2)
    assert summary(result).endswith(" reused")


SEED_JSON_REVISION_BODY = """\
    import json
    from pathlib import Path

    names = json.loads((Path(__file__).parent.parent / "seed.json").read_text())
    table = op.create_table(
        "colours",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50)),
    )
    op.bulk_insert(table, [{"id": i, "name": n} for i, n in enumerate(names, 1)])
"""

SEEDED = """
from sqlalchemy import text

def test_seeded(db_connection):
    rows = db_connection.execute(text("SELECT name FROM colours ORDER BY id"))
    assert [r[0] for r in rows] == {colours!r}
"""


@pytest.mark.backends("sqlite")
def test_reuse_rebuilds_when_a_data_file_of_the_migrations_changes(project: Project) -> None:
    """A revision reads migrations/seed.json: the "migrations" part covers every file
    under the script location and version locations (not bytecode)."""
    project.write("alembic.ini", ALEMBIC_INI)
    project.write("migrations/env.py", ENV_PY)
    project.write("migrations/seed.json", '["red"]')
    write_bare(project, REV1, None, SEED_JSON_REVISION_BODY)
    project.ini(alchemy_alembic_ini="alembic.ini")
    project.replace_tests("test_run1.py", SEEDED.format(colours=["red"]))
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=1)
    assert summary(result).endswith(" created")

    project.write("migrations/__pycache__/stale.cpython-312.pyc", "bytecode")
    project.replace_tests("test_run2.py", SEEDED.format(colours=["red"]))
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=1)
    assert summary(result).endswith(" reused")

    project.write("migrations/seed.json", '["red", "blue"]')
    project.replace_tests("test_run3.py", SEEDED.format(colours=["red", "blue"]))
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=1)
    assert summary(result).endswith(" rebuilt (changed: migrations)")


# -- errors that name the true cause ---------------------------------------------------------


@pytest.mark.backends("sqlite")
def test_missing_prepend_sys_path_is_blamed_on_the_configuration(project: Project) -> None:
    fastapi_project(project, ["red"])
    ini = project.path / "backend" / "alembic.ini"
    ini.write_text(ini.read_text().replace("prepend_sys_path = .\n", ""))
    project.write("test_db.py", MUST_NOT_RUN)
    result = project.run()
    text = output(result)
    assert result.ret != 0
    env_py = project.path / "backend" / "app" / "alembic" / "env.py"
    assert f"failed in the Alembic env.py at {env_py}: ModuleNotFoundError" in text
    assert f"Fix: make the module importable: prepend_sys_path in {ini}" in text
    assert "correct that migration" not in text
    assert "Traceback" not in text
    assert "must not run" not in text


@pytest.mark.backends("sqlite")
def test_unknown_revision_is_blamed_on_the_revision_files(project: Project) -> None:
    alembic_project(project)
    write_revision(project, REV3, "9f9f9f9f9f9f", "reviews")
    project.write("test_db.py", MUST_NOT_RUN)
    result = project.run()
    text = output(result)
    assert result.ret != 0
    assert "9f9f9f9f9f9f" in text
    assert "correct that migration" not in text
    assert "Traceback" not in text
    assert "must not run" not in text


@pytest.mark.backends("sqlite")
def test_alembic_configuration_error_names_the_configuration(project: Project) -> None:
    # env.py asks for a revision that does not exist: a CommandError from Alembic.
    env_py = ENV_PY.replace(
        "context.configure(connection=connection, target_metadata=target_metadata)",
        "context.configure(connection=connection, target_metadata=target_metadata, "
        'version_table="v")\n    connection.exec_driver_sql('
        '"CREATE TABLE IF NOT EXISTS v (version_num VARCHAR(32) PRIMARY KEY)")\n'
        "    connection.exec_driver_sql(\"INSERT INTO v VALUES ('0e0e0e0e0e0e')\")",
    )
    alembic_project(project, env_py=env_py)
    project.write("test_db.py", MUST_NOT_RUN)
    result = project.run()
    text = output(result)
    assert result.ret != 0
    assert f"Alembic refused the configuration in {project.path / 'alembic.ini'}" in text
    assert "0e0e0e0e0e0e" in text
    assert "correct that migration" not in text
    assert "Traceback" not in text


@pytest.mark.backends("postgresql")
def test_search_path_naming_a_missing_schema_is_explained(project: Project) -> None:
    alembic_project(project)
    project.write("test_db.py", MUST_NOT_RUN)
    url = f"{project.backend.url}?options=-csearch_path%3Dapp"
    result = project.pytester.runpytest("--alchemy-url", url, "-p", "no:cacheprovider")
    text = output(result)
    assert result.ret != 0
    assert "no schema has been selected to create in" in text
    assert "has none of the schemas its search_path names (set by the options in the URL)" in (text)
    assert "alchemy_prepare_database" in text
    assert "correct that migration" not in text
    assert "Traceback" not in text
    assert "must not run" not in text


@pytest.mark.backends("postgresql")
def test_plain_alembic_helper_sees_a_failure(project: Project) -> None:
    """The helper above is a real check: a broken migration fails it."""
    alembic_project(project, rev2_extra='    op.execute("SELECT * FROM no_such_table")\n')
    with pytest.raises(AssertionError, match="no_such_table"):
        plain_alembic_upgrade(project)


@pytest.mark.backends("postgresql")
def test_autocommit_block_under_env_py_s_own_transaction_blames_env_py(
    project: Project,
) -> None:
    env_py = ENV_PY.replace(
        "    with context.begin_transaction():\n        context.run_migrations()\n\n\n"
        "def run_migrations_online",
        "    with connection.begin():\n        context.run_migrations()\n\n\n"
        "def run_migrations_online",
    )
    alembic_project(project, env_py=env_py)
    write_bare(
        project,
        REV3,
        REV2,
        '    with op.get_context().autocommit_block():\n        op.execute("SELECT 1")\n',
    )
    with pytest.raises(AssertionError):  # plain alembic fails the same way
        plain_alembic_upgrade(project)
    project.write("test_db.py", MUST_NOT_RUN)
    result = project.run()
    text = output(result)
    assert result.ret != 0
    assert "autocommit_block() found the connection in a transaction" in text
    assert str(project.path / "migrations" / "env.py") in text
    assert "context.begin_transaction()" in text
    assert "correct that migration" not in text
    assert "Traceback" not in text
    assert "must not run" not in text
