"""create_all builds what the metadata names: the schemas its tables live in (PostgreSQL;
a clear refusal where a schema is another database), and the prepare hook
(alchemy_prepare_database) that runs on a new test database before any schema build."""

from __future__ import annotations

import pytest
from test_schema import REV1, alembic_project, write_revision

from conftest import Project, output, summary

#: A test module whose test must not run: the set-up stops the run first.
MUST_NOT_RUN = "def test_db(db_session):\n    raise AssertionError('must not run')\n"

# -- schemas --------------------------------------------------------------------------------

AUDIT_MODELS = """
from sqlalchemy import Enum, Integer, Sequence, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Event(Base):
    __tablename__ = "events"
    __table_args__ = {"schema": "audit"}
    id: Mapped[int] = mapped_column(
        Integer, Sequence("event_ids", schema="counters"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(Enum("in", "out", name="kind", schema="types"))
    note: Mapped[str] = mapped_column(String(50))

class Plain(Base):
    __tablename__ = "plain"
    id: Mapped[int] = mapped_column(primary_key=True)
"""


@pytest.mark.backends("postgresql")
def test_tables_in_schemas_are_created_and_rolled_back(project: Project) -> None:
    project.write("models.py", AUDIT_MODELS)
    project.ini(alchemy_metadata="models:Base")
    project.write(
        "test_audit.py",
        """
        from sqlalchemy import select
        from models import Event

        def test_write(db_session):
            db_session.add(Event(kind="in", note="first"))
            db_session.commit()
            assert db_session.scalars(select(Event.note)).all() == ["first"]

        def test_rolled_back(db_session):
            assert db_session.scalars(select(Event)).all() == []
        """,
    )
    project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=2)
    assert project.query("SELECT count(*) FROM audit.events") == [(0,)]
    schemas = project.query(
        "SELECT nspname FROM pg_namespace WHERE nspname IN ('audit', 'counters', 'types') "
        "ORDER BY nspname"
    )
    assert schemas == [("audit",), ("counters",), ("types",)]
    # Reused: the schemas exist already; nothing is created twice.
    project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=2)


@pytest.mark.backends("sqlite", "mariadb")
def test_tables_in_schemas_are_refused_where_a_schema_is_another_database(
    project: Project,
) -> None:
    project.write("models.py", AUDIT_MODELS)
    project.ini(alchemy_metadata="models:Base")
    project.write("test_audit.py", MUST_NOT_RUN)
    result = project.run()
    assert result.ret != 0
    text = output(result)
    assert "pytest-alchemy: on " in text
    assert "outside the test database" in text
    assert "audit.events" in text and "'audit'" in text
    assert "alchemy_metadata = models:Base" in text
    assert "Fix: leave schema= off those tables" in text
    assert "schema_translate_map" in text
    assert "Traceback" not in text
    assert "must not run" not in text
    assert project.databases() == set()


# -- the prepare hook -----------------------------------------------------------------------

#: A hook that creates a table and a view the tests use, and counts its calls in a file.
PREPARE = """
from pathlib import Path

from sqlalchemy import text

CALLS = Path(__file__).with_name("prepare_calls.txt")

def prepare(connection):
    with CALLS.open("a") as file:
        file.write("called\\n")
    connection.execute(text("CREATE TABLE lookup (code VARCHAR(10) PRIMARY KEY)"))
    connection.execute(text("INSERT INTO lookup (code) VALUES ('eur')"))
    connection.execute(text("CREATE VIEW lookup_codes AS SELECT code FROM lookup"))

def failing(connection):
    raise RuntimeError("no such thing as a free lunch")
"""

USES_LOOKUP = """
from sqlalchemy import text

def test_lookup(db_connection):
    assert db_connection.execute(text("SELECT code FROM lookup_codes")).all() == [("eur",)]
    db_connection.execute(text("INSERT INTO lookup (code) VALUES ('usd')"))
"""

METADATA = """
from sqlalchemy import Column, Integer, MetaData, Table

metadata = MetaData()
Table("things", metadata, Column("id", Integer, primary_key=True))
"""


def calls(project: Project) -> int:
    path = project.path / "prepare_calls.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_prepare_hook_makes_objects_the_tests_use_and_is_not_rerun_on_reuse(
    project: Project,
) -> None:
    project.write("hooks.py", PREPARE)
    project.write("models.py", METADATA)
    project.ini(alchemy_metadata="models:metadata", alchemy_prepare_database="hooks:prepare")
    project.replace_tests("test_a.py", USES_LOOKUP)
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert calls(project) == 1
    assert project.query("SELECT code FROM lookup") == [("eur",)]  # committed; test rolled back

    project.replace_tests("test_b.py", USES_LOOKUP)
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=1)
    assert calls(project) == 1  # the reused database has what the hook made
    assert "reused" in result.stdout.str()

    # A changed hook rebuilds (and reruns it).
    project.write(
        "hooks.py", PREPARE.replace("def prepare(connection):", "def prepare(connection):  # v2")
    )
    project.replace_tests("test_c.py", USES_LOOKUP)
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=1)
    assert "rebuilt (changed: prepare)" in result.stdout.str()
    assert calls(project) == 2


def test_prepare_hook_runs_before_an_alembic_build(project: Project) -> None:
    alembic_project(project)
    # The first migration needs what the hook made.
    write_revision(
        project,
        REV1,
        None,
        "authors",
        extra="    op.execute(\"INSERT INTO lookup (code) VALUES ('gbp')\")\n",
    )
    project.write("hooks.py", PREPARE)
    project.ini(alchemy_alembic_ini="alembic.ini", alchemy_prepare_database="hooks:prepare")
    project.write(
        "test_migrated.py",
        """
        from sqlalchemy import text

        def test_codes(db_connection):
            codes = db_connection.execute(text("SELECT code FROM lookup ORDER BY code"))
            assert codes.all() == [("eur",), ("gbp",)]
        """,
    )
    project.run().assert_outcomes(passed=1)
    assert calls(project) == 1
    assert project.databases() == set()


def test_prepare_hook_by_fixture_override(project: Project) -> None:
    project.write("hooks.py", PREPARE)
    project.write("models.py", METADATA)
    # The ini names a failing hook; the conftest's fixture wins.
    project.ini(alchemy_metadata="models:metadata", alchemy_prepare_database="hooks:failing")
    project.write(
        "conftest.py",
        """
        import pytest
        import hooks

        @pytest.fixture(scope="session")
        def alchemy_prepare_database():
            return hooks.prepare
        """,
    )
    project.replace_tests("test_a.py", USES_LOOKUP)
    project.run().assert_outcomes(passed=1)
    assert calls(project) == 1


@pytest.mark.backends("postgresql")
def test_a_constant_of_the_hook_s_module_is_part_of_the_fingerprint(project: Project) -> None:
    """A hook that reads a constant of its module (SCHEMAS), and one of a module it
    imports (EXTRA): changing either rebuilds."""
    project.write("models.py", METADATA)
    project.ini(alchemy_metadata="models:metadata", alchemy_prepare_database="prep:prepare")
    runs = [(["s1"], "s3", " created"), (["s1", "s2"], "s3", " rebuilt (changed: prepare)")]
    runs.append((["s1", "s2"], "s4", " rebuilt (changed: prepare)"))
    runs.append((["s1", "s2"], "s4", " reused"))
    for n, (schemas, extra, outcome) in enumerate(runs):
        project.write("extra.py", f"EXTRA = {extra!r}\n")
        project.write(
            "prep.py",
            f"""
            from sqlalchemy import text
            from extra import EXTRA

            SCHEMAS = {schemas!r}

            def prepare(conn):
                for name in [*SCHEMAS, EXTRA]:
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
                assert sorted(found) == {sorted([*schemas, extra])!r}
            """,
        )
        result = project.run_subprocess("--alchemy-reuse-db")
        result.assert_outcomes(passed=1)
        assert summary(result).endswith(outcome), summary(result)


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("kind", ["partial", "callable object"])
def test_a_partial_or_callable_object_hook_is_reused(project: Project, kind: str) -> None:
    """Their repr holds a memory address: they are fingerprinted by the module of the
    function or class instead, so an unchanged project reuses its database."""
    hook = {
        "partial": "prepare = functools.partial(_prepare, flag=True)\n",
        "callable object": (
            "class Prepare:\n"
            "    def __call__(self, conn):\n"
            "        _prepare(conn, flag=True)\n\n"
            "prepare = Prepare()\n"
        ),
    }[kind]
    project.write("models.py", METADATA)
    project.write("prep.py", f"import functools\n\ndef _prepare(conn, flag):\n    pass\n\n{hook}")
    project.ini(alchemy_metadata="models:metadata", alchemy_prepare_database="prep:prepare")
    project.write("test_p.py", "def test_p(db_connection):\n    pass\n")
    project.run_subprocess("--alchemy-reuse-db").assert_outcomes(passed=1)
    again = project.run_subprocess("--alchemy-reuse-db")
    again.assert_outcomes(passed=1)
    assert summary(again).endswith(" reused"), summary(again)

    project.write("prep.py", (project.path / "prep.py").read_text().replace("True", "False"))
    changed = project.run_subprocess("--alchemy-reuse-db")
    changed.assert_outcomes(passed=1)
    assert summary(changed).endswith(" rebuilt (changed: prepare)"), summary(changed)


def test_a_partial_s_arguments_are_fingerprinted_when_stable() -> None:
    import functools

    from pytest_alchemy.schema._prepare import PrepareHook

    def prepare(connection: object, flag: object = None) -> None:
        pass

    def fingerprint(function: object) -> str:
        return PrepareHook(function, "a test").fingerprint()  # type: ignore[arg-type]

    one = functools.partial(prepare, flag=1)
    assert fingerprint(one) == fingerprint(functools.partial(prepare, flag=1))
    assert fingerprint(one) != fingerprint(functools.partial(prepare, flag=2))
    # An argument whose repr holds an address: the same on every run, not the address.
    assert fingerprint(functools.partial(prepare, flag=object())) == fingerprint(
        functools.partial(prepare, flag=object())
    )


def test_a_failing_prepare_hook_is_named(project: Project) -> None:
    project.write("hooks.py", PREPARE)
    project.write("models.py", METADATA)
    project.ini(alchemy_metadata="models:metadata", alchemy_prepare_database="hooks:failing")
    project.replace_tests("test_a.py", MUST_NOT_RUN)
    result = project.run()
    assert result.ret != 0
    text = output(result)
    assert "pytest-alchemy: the prepare hook hooks:failing" in text
    assert "(alchemy_prepare_database = hooks:failing)" in text
    assert "RuntimeError: no such thing as a free lunch" in text
    assert "Fix: correct that function" in text
    assert "Traceback" not in text
    assert "must not run" not in text
    assert project.databases() == set()


def test_a_prepare_hook_reaching_another_database_is_stopped(project: Project) -> None:
    project.write(
        "hooks.py",
        """
        from sqlalchemy import create_engine, pool, text

        def prepare(connection):
            other = create_engine("sqlite:///elsewhere.db", poolclass=pool.NullPool)
            with other.begin() as conn:
                conn.execute(text("CREATE TABLE stolen (id INTEGER)"))
        """,
    )
    project.write("models.py", METADATA)
    project.ini(alchemy_metadata="models:metadata", alchemy_prepare_database="hooks:prepare")
    project.replace_tests("test_a.py", MUST_NOT_RUN)
    result = project.run()
    assert result.ret != 0
    text = output(result)
    assert "the prepare hook hooks:prepare" in text and "tried to connect to" in text
    assert not (project.path / "elsewhere.db").exists()


def test_a_prepare_setting_that_is_no_function_is_refused(project: Project) -> None:
    project.write("hooks.py", "prepare = 42\n")
    project.ini(alchemy_prepare_database="hooks:prepare")
    project.replace_tests("test_a.py", MUST_NOT_RUN)
    result = project.run()
    assert result.ret != 0
    text = output(result)
    assert "alchemy_prepare_database = hooks:prepare is a int, not a function" in text


# -- extensions (PostgreSQL) ------------------------------------------------------------------

CITEXT_MODELS = """
from sqlalchemy import Column, Integer, MetaData, Table
from sqlalchemy.dialects.postgresql import CITEXT

metadata = MetaData()
users = Table(
    "users", metadata, Column("id", Integer, primary_key=True), Column("email", CITEXT)
)
"""

CITEXT_HOOK = """
from sqlalchemy import text

def prepare(connection):
    connection.execute(text("CREATE EXTENSION IF NOT EXISTS citext"))
"""


@pytest.mark.backends("postgresql")
def test_an_extension_type_needs_and_gets_the_prepare_hook(project: Project) -> None:
    project.write("models.py", CITEXT_MODELS)
    project.write("hooks.py", CITEXT_HOOK)
    project.replace_tests(
        "test_a.py",
        """
        from sqlalchemy import select
        from models import users

        def test_case_insensitive(db_connection):
            db_connection.execute(users.insert(), [{"id": 1, "email": "Ann@Example.org"}])
            found = db_connection.execute(
                select(users.c.id).where(users.c.email == "ann@example.org")
            )
            assert found.all() == [(1,)]
        """,
    )
    # Without the hook: the true cause and the fix.
    project.ini(alchemy_metadata="models:metadata")
    result = project.run()
    assert result.ret != 0
    text = output(result)
    assert 'type "citext" does not exist' in text
    assert "Fix: the type citext is not made by create_all" in text
    assert "alchemy_prepare_database" in text
    assert "Traceback" not in text
    assert "must not run" not in text

    project.ini(alchemy_metadata="models:metadata", alchemy_prepare_database="hooks:prepare")
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert project.query("SELECT extname FROM pg_extension WHERE extname = 'citext'") == [
        ("citext",)
    ]
