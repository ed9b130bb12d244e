"""The reuse fingerprint: the DDL ``create_all`` actually emits on the backend (types,
sequences, comments, DDL events), plus the server, the plugin, the base database's
settings and the prepare hook. A change to any of them rebuilds a reused database, and
the summary line names the part that changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url

from conftest import Backend, Project, summary
from pytest_alchemy._database import TestDatabase
from pytest_alchemy.schema import MetadataSchema

#: One model with each kind of DDL that CreateTable alone does not show.
MODELS = """
from sqlalchemy import DDL, Column, Enum, Integer, MetaData, Sequence, String, Table, event

metadata = MetaData()
counter = Sequence("counter", start={start}, metadata=metadata)
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("mood", Enum({moods}, name="mood")),
    Column("note", String(50), comment={comment!r}),
)
log = Table(
    "log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("line", String(50)),
)
event.listen(log, "after_create", DDL("INSERT INTO log (id, line) VALUES (1, '{line}')"))
"""

DEFAULTS: dict[str, Any] = {
    "start": 1,
    "moods": "'happy', 'sad'",
    "comment": "a note",
    "line": "seeded",
}

USES_DB = "def test_db(db_engine):\n    pass\n"


def write_models(project: Project, **changes: Any) -> None:
    project.write("models.py", MODELS.format(**{**DEFAULTS, **changes}))


def reuse_run(project: Project, module: str) -> str:
    """A --alchemy-reuse-db run (a new test module each time); its summary line."""
    project.replace_tests(module, USES_DB)
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=1)
    return summary(result)


def changed_and_rebuilt(project: Project, **changes: Any) -> None:
    """Created, then reused (a row written in between stays), then after ``changes`` to
    the models rebuilt with the reason "changed: metadata", the row gone."""
    write_models(project)
    project.ini(alchemy_metadata="models:metadata")
    assert reuse_run(project, "test_a.py").endswith(" created")
    project.execute("INSERT INTO items (id) VALUES (99)")
    assert reuse_run(project, "test_b.py").endswith(" reused")
    assert project.query("SELECT id FROM items") == [(99,)]

    write_models(project, **changes)
    assert reuse_run(project, "test_c.py").endswith(" rebuilt (changed: metadata)")
    assert project.query("SELECT id FROM items") == []  # a fresh database
    assert reuse_run(project, "test_d.py").endswith(" reused")


@pytest.mark.backends("postgresql", "mariadb")
def test_a_new_enum_value_rebuilds(project: Project) -> None:
    changed_and_rebuilt(project, moods="'happy', 'sad', 'meh'")
    if project.backend.name == "postgresql":
        values = project.query("SELECT array_to_string(enum_range(NULL::mood), ',')")
        assert values == [("happy,sad,meh",)]
    else:
        values = project.query(
            "SELECT column_type FROM information_schema.columns WHERE table_schema = "
            "DATABASE() AND table_name = 'items' AND column_name = 'mood'"
        )
        assert values == [("enum('happy','sad','meh')",)]


@pytest.mark.backends("postgresql", "mariadb")
def test_a_sequence_change_rebuilds(project: Project) -> None:
    changed_and_rebuilt(project, start=1000)
    if project.backend.name == "postgresql":
        sql = "SELECT start_value FROM pg_sequences WHERE sequencename = 'counter'"
    else:
        sql = "SELECT start_value FROM counter"
    assert project.query(sql) == [(1000,)]


@pytest.mark.backends("postgresql", "mariadb")
def test_a_comment_change_rebuilds(project: Project) -> None:
    changed_and_rebuilt(project, comment="another note")
    if project.backend.name == "postgresql":
        sql = "SELECT col_description('items'::regclass, 3)"
    else:
        sql = (
            "SELECT column_comment FROM information_schema.columns WHERE table_schema = "
            "DATABASE() AND table_name = 'items' AND column_name = 'note'"
        )
    assert project.query(sql) == [("another note",)]


def test_a_ddl_event_change_rebuilds(project: Project) -> None:
    changed_and_rebuilt(project, line="seeded again")
    assert project.query("SELECT line FROM log") == [("seeded again",)]


#: A function listener seeding rows through the connection it is given.
LISTENER = """

@event.listens_for(log, "after_create")
def seed(target, connection, **kw):
    connection.execute(target.insert(), [{{"id": 2, "line": "{line}"}}])
"""


def test_a_python_listener_that_writes_is_captured(project: Project) -> None:
    # What the listener executes (statement and rows) is part of the metadata's DDL.
    project.ini(alchemy_metadata="models:metadata")
    for module, line, outcome in [
        ("test_a.py", "first", "created"),
        ("test_b.py", "first", "reused"),
        ("test_c.py", "second", "rebuilt (changed: metadata)"),
    ]:
        write_models(project)
        with (project.path / "models.py").open("a") as file:
            file.write(LISTENER.format(line=line))
        assert reuse_run(project, module).endswith(f" {outcome}")
    assert project.query("SELECT line FROM log ORDER BY id") == [("seeded",), ("second",)]


# -- the parts every schema source gets -----------------------------------------------------


def _database(backend: Backend, tmp_path: Path, metadata: MetaData) -> TestDatabase:
    url = make_url(backend.url or f"sqlite:///{tmp_path / 'app.db'}")
    return TestDatabase(
        url,
        source="a test",
        sqlite_dir=tmp_path,
        schema=MetadataSchema(metadata, "a test metadata"),
    )


def test_every_fingerprint_has_the_common_parts(backend: Backend, tmp_path: Path) -> None:
    database = _database(backend, tmp_path, MetaData())
    try:
        parts = database._fingerprint()
        assert set(parts) == {
            "metadata",
            "server",
            "plugin",
            "libraries",
            "url options",
            "database settings",
            "prepare",
        }
        assert all(len(value) == 16 for value in parts.values())
        assert database._fingerprint() == parts  # stable

        version = database.provisioner.server_version()
        product = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mariadb": "MariaDB"}
        assert version.startswith(product[backend.name] + " ")
        assert any(ch.isdigit() for ch in version)

        # Each input changes its own part only.
        database.provisioner.server_version = lambda: "another server 1.0"  # type: ignore[method-assign]
        database.provisioner.database_settings = lambda: {"search_path": "app"}  # type: ignore[method-assign]

        def prepare(connection: Any) -> None:
            pass

        database.prepare = _hook(prepare)
        changed = database._fingerprint()
        different = {k for k in parts if parts[k] != changed[k]}
        assert different == {"server", "database settings", "prepare"}
    finally:
        database.teardown()


def test_xdist_workers_databases_share_one_fingerprint(backend: Backend, tmp_path: Path) -> None:
    # Each worker (and a run that took the _2 name) has its own database name: the name
    # must not be part of the fingerprint, or every worker would rebuild every time.
    one = _database(backend, tmp_path, MetaData())
    other = TestDatabase(
        one.provisioner.base_url,
        source="a test",
        sqlite_dir=tmp_path,
        schema=MetadataSchema(MetaData(), "a test metadata"),
        suffix="gw1",
    )
    try:
        assert one.url.database != other.url.database
        assert one._fingerprint() == other._fingerprint()
    finally:
        one.teardown()
        other.teardown()


def test_url_options_part_is_the_query_only() -> None:
    from pytest_alchemy.schema._source import url_options

    url = make_url("postgresql://app:pw@db/app?options=-csearch_path%3Dapp2,public&a=1")
    same = make_url(
        "postgresql://other:pw2@host2/test_app_2?a=1&options=-csearch_path%3Dapp2,public"
    )
    assert url_options(url) == url_options(same)  # not user, password, host, name; sorted
    assert url_options(url) == url_options(url.update_query_dict({"sslpassword": "secret"}))
    assert url_options(url) != url_options(url.update_query_dict({"options": "-csearch_path=s"}))
    assert url_options(url) != url_options(url.set(query={}))


def _hook(function: Any) -> Any:
    from pytest_alchemy.schema._prepare import PrepareHook

    return PrepareHook(function, "a test")


def test_indexes_in_any_order_give_one_fingerprint(backend: Backend, tmp_path: Path) -> None:
    # create_all walks a table's indexes as a set: the fingerprint must not depend on it.
    from sqlalchemy import Column, Index, Integer, Table

    fingerprints = set()
    for order in ([0, 1, 2, 3], [3, 2, 1, 0]):
        metadata = MetaData()
        columns = [Column(f"c{i}", Integer) for i in range(4)]
        table = Table("t", metadata, Column("id", Integer, primary_key=True), *columns)
        for i in order:
            Index(f"ix_{i}", table.c[f"c{i}"])
        database = _database(backend, tmp_path, metadata)
        try:
            fingerprints.add(database._fingerprint()["metadata"])
        finally:
            database.teardown()
    assert len(fingerprints) == 1


def test_a_listener_that_reads_makes_the_metadata_never_reused(tmp_path: Path) -> None:
    # It cannot be captured offline: rather than trust a database it may have left
    # stale, the part differs on every computation.
    from sqlalchemy import Column, Integer, Table, event, select

    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer, primary_key=True))

    @event.listens_for(table, "after_create")
    def reads(target: Any, connection: Any, **kw: Any) -> None:
        connection.execute(select(target.c.id)).scalar()

    database = _database(Backend("sqlite"), tmp_path, metadata)
    try:
        assert database._fingerprint()["metadata"] != database._fingerprint()["metadata"]
    finally:
        database.teardown()


# -- the URL's query options -------------------------------------------------------------------

SCHEMA_TEST = """
from sqlalchemy import text

def test_where_{n}(db_connection):
    assert db_connection.execute(text("SELECT count(*) FROM users")).scalar() == 0
"""


@pytest.mark.backends("postgresql")
def test_a_search_path_in_the_url_options_rebuilds(project: Project) -> None:
    """``?options=-csearch_path=...`` decides where create_all puts the tables; changing it
    rebuilds a reused database."""
    from conftest import MODELS as APP_MODELS

    project.write("models.py", APP_MODELS)
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
    for n, schema in enumerate(["s1", "s1", "s2"]):
        project.replace_tests(f"test_{n}.py", SCHEMA_TEST.format(n=n))
        result = project.run(
            "--alchemy-url", f"{url}?options=-csearch_path%3D{schema}", "--alchemy-reuse-db"
        )
        result.assert_outcomes(passed=1)
        expected = [" created", " reused", " rebuilt (changed: url options)"][n]
        assert summary(result).endswith(expected), summary(result)
    tables = "SELECT table_schema FROM information_schema.tables WHERE table_name = 'users'"
    assert project.query(tables) == [("s2",)]


READING_LISTENER_MODELS = """
    from sqlalchemy import Column, Integer, MetaData, Table, event, func, select

    metadata = MetaData()
    items = Table("items", metadata, Column("id", Integer, primary_key=True))

    @event.listens_for(items, "after_create")
    def seed_if_empty(target, connection, **kw):
        if not connection.execute(select(func.count()).select_from(target)).scalar():
            connection.execute(target.insert(), [{"id": 1}])
"""


def test_a_listener_that_reads_is_named_as_the_reason_of_every_rebuild(project: Project) -> None:
    """Such a database is rebuilt on every reuse run; the summary says why, naming the
    listener, rather than claiming that the metadata changed."""
    project.write("models.py", READING_LISTENER_MODELS)
    project.ini(alchemy_metadata="models:metadata")
    project.write("test_a.py", "def test_db(db_session):\n    pass\n")
    assert summary(project.run("--alchemy-reuse-db")).endswith(" created")
    line = summary(project.run("--alchemy-reuse-db"))
    assert "rebuilt (metadata cannot be fingerprinted: the listener seed_if_empty() at " in line
    assert "models.py:" in line and "needs a live connection" in line
    assert "changed:" not in line
