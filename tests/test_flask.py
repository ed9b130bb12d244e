"""Flask-SQLAlchemy 3 with two ini lines: the factory's database URI pinned to the test
database before it runs, every engine it makes routed into the test's transaction,
``db.session`` / ``Model.query`` / views that commit and roll back isolated, the schema
from the models or from Flask-Migrate's migrations, and every bad input stopped."""

from __future__ import annotations

import pytest

from conftest import Backend, Project, output, summary
from pytest_alchemy._settings import sqlite_dir

APP = """
import os

from flask import Blueprint, Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Item(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


class DevConfig:
    SQLALCHEMY_DATABASE_URI = "sqlite:///dev.db"


items = Blueprint("items", __name__)


@items.post("/items")
def add():
    db.session.add(Item(name=request.json["name"]))
    db.session.commit()
    return jsonify(count=db.session.query(Item).count())


@items.post("/undo")
def undo():
    db.session.add(Item(name="undone"))
    db.session.flush()
    db.session.rollback()
    return jsonify(count=Item.query.count())


def create_app(config=None):
    app = Flask(__name__)
    app.config.from_object(config or DevConfig)
    app.config.update(SQLALCHEMY_DATABASE_URI=os.environ.get("DATABASE_URL", "sqlite:///d.db"))
    db.init_app(app)
    extra = app.extensions.setdefault("made", [])
    extra.append(1)
    app.register_blueprint(items)
    return app
"""

APP_TESTS = """
from myapp import Item, db


def test_views_commit_and_roll_back(flask_client, db_session):
    assert flask_client.post("/items", json={"name": "a"}).json == {"count": 1}
    assert db_session.query(Item).count() == 1  # the view's commit is the test's
    db_session.add(Item(name="b"))
    db_session.commit()
    assert flask_client.post("/undo").json == {"count": 2}
    assert db_session is db.session()


def test_db_session_in_app_context(flask_app):
    assert Item.query.count() == 0
    db.session.add(Item(name="c"))
    db.session.commit()
    nested = db.session.begin_nested()
    db.session.add(Item(name="d"))
    nested.rollback()
    assert [i.name for i in Item.query.all()] == ["c"]
    flask_app.config["MUTATED"] = True


def test_rolled_back_and_config_restored(flask_app, db_session):
    assert db_session.query(Item).count() == 0
    assert "MUTATED" not in flask_app.config
    assert str(db.engine.url).startswith(("sqlite:///", "postgresql", "mysql"))
    assert "dev.db" not in str(db.engine.url) and "plugin" not in str(db.engine.url)
"""


def flask_project(project: Project, **ini: str) -> Project:
    project.write("myapp.py", APP)
    project.ini(alchemy_flask_app="myapp:create_app", alchemy_flask_db="myapp:db", **ini)
    project.write("test_app.py", APP_TESTS)
    return project


@pytest.mark.parametrize("scope", ["session", "function"])
def test_flask_app_is_isolated_with_two_ini_lines(project: Project, scope: str) -> None:
    flask_project(project, alchemy_flask_app_scope=scope)
    result = project.run("-p", "no:randomly", "--alchemy-reuse-db")
    result.assert_outcomes(passed=3)
    assert project.query("SELECT count(*) FROM item") == [(0,)]
    # The factory's own URIs were never used: no SQLite file, no instance folder.
    assert not list(project.path.rglob("*.db")) and not (project.path / "instance").exists()
    assert "created" in summary(result)


@pytest.mark.backends("sqlite", "mariadb")
def test_an_app_made_at_import(project: Project) -> None:
    project.write("myapp.py", APP + "\n\napp = create_app()\n")
    project.ini(alchemy_flask_app="myapp:app", alchemy_flask_db="myapp:db")
    project.write("test_app.py", APP_TESTS)
    project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=3)
    assert project.query("SELECT count(*) FROM item") == [(0,)]
    assert not list(project.path.rglob("*.db")) and not (project.path / "instance").exists()


BINDS_APP = (
    APP
    + """

class Event(db.Model):
    __bind_key__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    what: Mapped[str] = mapped_column(String(50))


@items.post("/both")
def both():
    db.session.add_all([Item(name=request.json["name"]), Event(what="added")])
    db.session.commit()
    return jsonify(items=Item.query.count(), events=Event.query.count())


def create_bound_app():
    app = create_app()
    return app
"""
).replace(
    "    db.init_app(app)",
    "    app.config['SQLALCHEMY_BINDS'] = {'audit': {'url': 'sqlite:///audit.db', 'echo': False}}"
    "\n    db.init_app(app)",
)

BINDS_TESTS = """
from myapp import Event, Item, db


def test_both_binds_commit(flask_client, db_session):
    assert flask_client.post("/both", json={"name": "a"}).json == {"items": 1, "events": 1}
    assert db_session.query(Event).count() == 1
    nested = db.session.begin_nested()
    db.session.add(Event(what="undone"))
    nested.rollback()
    db.session.rollback()
    assert (Item.query.count(), Event.query.count()) == (1, 1)
    assert db.engines["audit"].url.database != db.engine.url.database


def test_both_rolled_back(flask_app):
    assert (Item.query.count(), Event.query.count()) == (0, 0)
"""


def test_every_bind_gets_its_own_isolated_test_database(project: Project) -> None:
    project.write("myapp.py", BINDS_APP)
    project.ini(alchemy_flask_app="myapp:create_bound_app", alchemy_flask_db="myapp:db")
    project.write("test_app.py", BINDS_TESTS)
    project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=2)
    assert project.query("SELECT count(*) FROM item") == [(0,)]
    audit = project.test_db_name("_audit")
    assert project.query("SELECT count(*) FROM event", audit) == [(0,)]
    assert not list(project.path.rglob("*.db"))
    project.run("-p", "no:randomly").assert_outcomes(passed=2)  # reused, then dropped
    assert project.databases() == set()


def test_binds_with_module_sessions_and_threads(project: Project) -> None:
    project.write("myapp.py", BINDS_APP)
    project.ini(alchemy_flask_app="myapp:create_bound_app", alchemy_flask_db="myapp:db")
    project.write(
        "test_binds.py",
        """
        import threading
        import time

        import pytest
        from myapp import Event, Item, db

        @pytest.fixture(scope="module")
        def seeded(module_db_session):
            module_db_session.add_all([Event(what="module"), Item(name="module")])
            module_db_session.commit()

        def test_module_rows_in_their_binds(seeded, flask_app):
            assert [e.what for e in Event.query.all()] == ["module"]
            assert [i.name for i in Item.query.all()] == ["module"]

        def test_threads_writing_two_binds_in_opposite_orders(flask_app):
            errors = []

            def work(first, second):
                try:
                    with flask_app.app_context():
                        db.session.add(first)
                        db.session.flush()
                        time.sleep(0.3)
                        db.session.add(second)
                        db.session.commit()
                except Exception as exc:
                    errors.append(repr(exc))

            threads = [
                threading.Thread(target=work, args=(Item(name="one"), Event(what="one"))),
                threading.Thread(target=work, args=(Event(what="two"), Item(name="two"))),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
            assert Event.query.count() == 3 and Item.query.count() == 3
        """,
    )
    project.write(
        "test_zz_after.py",
        """
        from myapp import Event, Item

        def test_nothing_left(flask_app):
            assert Event.query.count() == 0 and Item.query.count() == 0
        """,
    )
    project.run("-p", "no:randomly", "-o", "alchemy_lock_timeout=5").assert_outcomes(passed=3)


@pytest.mark.backends("sqlite")
def test_a_bind_whose_server_is_down_is_named(project: Project) -> None:
    project.write("myapp.py", BINDS_APP)
    project.ini(
        alchemy_flask_app="myapp:create_bound_app",
        alchemy_flask_db="myapp:db",
        alchemy_bind_urls="audit = postgresql+psycopg://postgres@127.0.0.1:1/audit",
    )
    project.write("test_app.py", BINDS_TESTS)
    result = project.run()
    assert result.ret != 0
    text = output(result)
    assert "alchemy_bind_urls entry 'audit'" in text and "127.0.0.1:1" in text, text
    assert project.databases() == set()


@pytest.mark.backends("postgresql")
def test_a_bind_whose_name_collides_with_the_default_one_is_refused(project: Project) -> None:
    project.write("myapp.py", BINDS_APP)
    base, url = project.backend.base, project.backend.url
    assert url is not None
    project.ini(
        alchemy_flask_app="myapp:create_bound_app",
        alchemy_flask_db="myapp:db",
        alchemy_url=url.replace(base, f"{base}_audit"),
        alchemy_bind_urls=f"audit = {url}",
    )
    project.write("test_app.py", BINDS_TESTS)
    result = project.pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    text = output(result)
    assert f"bind 'audit' would be 'test_{base}_audit'" in text, text
    assert "the default bind's test database may take too" in text, text
    assert project.databases() == set()


@pytest.mark.backends("postgresql")
def test_a_bind_on_another_server(project: Project) -> None:
    project.write("myapp.py", BINDS_APP)
    project.ini(
        alchemy_flask_app="myapp:create_bound_app",
        alchemy_flask_db="myapp:db",
        alchemy_bind_urls="audit = sqlite://",
    )
    project.write("test_app.py", BINDS_TESTS)
    result = project.run("-p", "no:randomly", "--alchemy-reuse-db")
    result.assert_outcomes(passed=2)
    assert project.query("SELECT count(*) FROM item") == [(0,)]
    sqlite = Project(project.pytester, Backend("sqlite"))
    assert sqlite.query("SELECT count(*) FROM event", "test_alchemy_audit") == [(0,)]
    assert "sqlite test database" in output(result)


LITE_APP = """
from flask import Flask, jsonify, request
from flask_sqlalchemy_lite import SQLAlchemy
from sqlalchemy import String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "item"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


db = SQLAlchemy()


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_ENGINES"] = {"default": "sqlite:///dev.db"}
    db.init_app(app)

    @app.post("/items")
    def add():
        db.session.add(Item(name=request.json["name"]))
        db.session.commit()
        return jsonify(count=db.session.scalar(select(func.count()).select_from(Item)))

    return app
"""


@pytest.mark.backends("sqlite", "mariadb")
def test_flask_sqlalchemy_lite(project: Project) -> None:
    project.write("myapp.py", LITE_APP)
    project.ini(
        alchemy_flask_app="myapp:create_app",
        alchemy_flask_db="myapp:db",
        alchemy_metadata="myapp:Base",
    )
    project.write(
        "test_lite.py",
        """
        from myapp import Item, db

        def test_commit(flask_client, db_session):
            assert flask_client.post("/items", json={"name": "a"}).json == {"count": 1}
            assert db_session is db.session
            assert db_session.query(Item).count() == 1

        def test_rolled_back(db_session):
            assert db_session.query(Item).count() == 0
        """,
    )
    project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=2)
    assert project.query("SELECT count(*) FROM item") == [(0,)]
    assert not list(project.path.rglob("*.db")) and not (project.path / "instance").exists()


# -- Flask-Migrate ------------------------------------------------------------------------

MIGRATE_APP = (
    APP
    + """

from flask_migrate import Migrate, upgrade

migrate = Migrate()


def create_migrated_app(config=None):
    app = create_app(config)
    migrate.init_app(app, db)
    if os.environ.get("UPGRADE_IN_FACTORY"):
        with app.app_context():
            upgrade()
    return app
"""
)

#: Flask-Migrate's env.py template, reduced, with Flask-SQLAlchemy 3's ``db.engine``.
ENV_PY = """
from alembic import context
from flask import current_app

config = context.config


def run_migrations_online():
    migrate = current_app.extensions["migrate"]
    with migrate.db.engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=migrate.db.metadata, **migrate.configure_args
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
"""

REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = {down}


def upgrade():
    {body}


def downgrade():
    pass
"""


def migrate_project(project: Project, body: str = "") -> Project:
    project.write("myapp.py", MIGRATE_APP)
    project.ini(alchemy_flask_app="myapp:create_migrated_app", alchemy_flask_db="myapp:db")
    project.write("migrations/alembic.ini", "[alembic]\n")
    project.write("migrations/env.py", ENV_PY)
    create = (
        'op.create_table("item", sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("name", sa.String(50), unique=True))'
    )
    project.write(
        "migrations/versions/0001_item.py", REVISION.format(rev="0001", down=None, body=create)
    )
    if body:
        project.write(
            "migrations/versions/0002_more.py",
            REVISION.format(rev="0002", down='"0001"', body=body),
        )
    project.write("test_app.py", APP_TESTS)
    return project


def test_flask_migrate_builds_the_schema_and_a_factory_may_upgrade(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate_project(project)
    monkeypatch.setenv("UPGRADE_IN_FACTORY", "1")
    project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=3)
    assert project.query("SELECT version_num FROM alembic_version") == [("0001",)]
    assert project.query("SELECT count(*) FROM item") == [(0,)]
    # Reused while the migrations are unchanged; a new revision rebuilds.
    assert "reused" in summary(project.run("-p", "no:randomly", "--alchemy-reuse-db"))
    project.write(
        "migrations/versions/0002_more.py",
        REVISION.format(
            rev="0002",
            down='"0001"',
            body='op.create_table("more", sa.Column("id", sa.Integer, primary_key=True))',
        ),
    )
    result = project.run("-p", "no:randomly", "--alchemy-reuse-db")
    result.assert_outcomes(passed=3)
    assert "changed: migrations" in summary(result)
    assert project.query("SELECT version_num FROM alembic_version") == [("0002",)]


#: Flask-Migrate's multiple-database env.py template, reduced: every bind migrated in one
#: upgrade, each with its own version table and its own functions in each revision.
MULTIDB_ENV_PY = """
from alembic import context
from flask import current_app

db = current_app.extensions["migrate"].db
engines = {"": db.engine, **{k: e for k, e in db.engines.items() if k is not None}}
connections = {name: engine.connect() for name, engine in engines.items()}
try:
    transactions = {name: conn.begin() for name, conn in connections.items()}
    for name, conn in connections.items():
        context.configure(
            connection=conn,
            upgrade_token=f"{name}_upgrades",
            downgrade_token=f"{name}_downgrades",
            target_metadata=db.metadatas[name or None],
        )
        context.run_migrations(engine_name=name)
    for transaction in transactions.values():
        transaction.commit()
finally:
    for conn in connections.values():
        conn.close()
"""

MULTIDB_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade(engine_name):
    globals()[f"upgrade_{engine_name}"]()


def upgrade_():
    op.create_table(
        "item", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50))
    )


def upgrade_audit():
    op.create_table(
        "event", sa.Column("id", sa.Integer, primary_key=True), sa.Column("what", sa.String(50))
    )
"""


@pytest.mark.backends("sqlite", "postgresql")
def test_flask_migrate_migrates_every_bind(project: Project) -> None:
    project.write(
        "myapp.py",
        BINDS_APP + "\n\nfrom flask_migrate import Migrate\n\nmigrate = Migrate(db=db)\n"
        "\n\ndef create_migrated_app():\n    app = create_app()\n"
        "    migrate.init_app(app, db)\n    return app\n",
    )
    project.ini(alchemy_flask_app="myapp:create_migrated_app", alchemy_flask_db="myapp:db")
    project.write("migrations/alembic.ini", "[alembic]\n")
    project.write("migrations/env.py", MULTIDB_ENV_PY)
    project.write("migrations/versions/0001_both.py", MULTIDB_REVISION)
    project.write("test_app.py", BINDS_TESTS)
    project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=2)
    audit = project.test_db_name("_audit")
    assert project.query("SELECT version_num FROM alembic_version", audit) == [("0001",)]
    assert project.query("SELECT count(*) FROM event", audit) == [(0,)]
    # The audit database alone is gone: the next run makes it again, and migrates it
    # (the default bind's database is rebuilt with it: one upgrade migrates both).
    if project.backend.server_url is None:
        for path in sqlite_dir(project.path).glob(f"{audit}.db*"):
            path.unlink()
    else:
        engine = project.backend.admin_engine()
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{audit}"')
        engine.dispose()
    result = project.run("-p", "no:randomly", "--alchemy-reuse-db")
    result.assert_outcomes(passed=2)
    assert project.query("SELECT version_num FROM alembic_version", audit) == [("0001",)]
    assert "rebuilt (the test database of bind 'audit' was made anew" in output(result)


FACTORY_MIGRATE_APP = (
    APP
    + """

from flask_migrate import Migrate


def create_migrated_app(config=None):
    app = create_app(config)
    Migrate(app, db, directory="db/migrations")
    return app


def create_app_with(config):
    return create_migrated_app(config)
"""
)


@pytest.mark.backends("sqlite")
def test_a_migrations_directory_set_in_the_factory(project: Project) -> None:
    migrate_project(project)
    (project.path / "db").mkdir()
    (project.path / "migrations").rename(project.path / "db" / "migrations")
    project.write("myapp.py", FACTORY_MIGRATE_APP)
    project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=3)
    assert project.query("SELECT version_num FROM alembic_version") == [("0001",)]
    # A factory that needs arguments cannot be asked before the build: a clear stop.
    project.ini(alchemy_flask_app="myapp:create_app_with", alchemy_flask_db="myapp:db")
    project.write(
        "conftest.py",
        """
        import pytest

        @pytest.fixture(scope="session")
        def alchemy_flask_app_args():
            return ((None,), {})
        """,
    )
    result = project.run("-p", "no:randomly", "--alchemy-create-db")
    assert result.ret != 0
    text = output(result)
    assert "uses Flask-Migrate's migrations in" in text and "Migrate(directory=" in text, text


@pytest.mark.backends("mariadb")
def test_a_bind_committed_to_for_real_is_rebuilt_and_migrated(project: Project) -> None:
    """MariaDB: a procedure that commits ends the audit bind's transaction (a breach);
    its database is rebuilt before its next use, and migrated by the group's upgrade."""
    project.write(
        "myapp.py",
        BINDS_APP + "\n\nfrom flask_migrate import Migrate\n\nmigrate = Migrate(db=db)\n"
        "\n\ndef create_migrated_app():\n    app = create_app()\n"
        "    migrate.init_app(app, db)\n    return app\n",
    )
    project.ini(alchemy_flask_app="myapp:create_migrated_app", alchemy_flask_db="myapp:db")
    project.write("migrations/alembic.ini", "[alembic]\n")
    project.write("migrations/env.py", MULTIDB_ENV_PY)
    project.write(
        "migrations/versions/0001_both.py",
        (
            MULTIDB_REVISION
            + """

def upgrade_audit_procedure():
    op.execute(
        "CREATE PROCEDURE sneaky_commit() BEGIN "
        "INSERT INTO event (what) VALUES ('sneaky'); COMMIT; END"
    )
"""
        ).replace(
            "def upgrade_audit():\n", "def upgrade_audit():\n    upgrade_audit_procedure()\n"
        ),
    )
    project.write(
        "test_breach.py",
        """
        from sqlalchemy import text
        from myapp import Event, db

        def test_breach(flask_app):
            db.session.add(Event(what="first"))
            db.session.commit()
            with db.engines["audit"].connect() as conn:
                conn.execute(text("CALL sneaky_commit()"))

        def test_after(flask_app):
            assert Event.query.count() == 0
            db.session.add(Event(what="again"))
            db.session.commit()
            assert Event.query.count() == 1
        """,
    )
    result = project.run("-p", "no:randomly", "--alchemy-reuse-db")
    result.assert_outcomes(passed=1, failed=1)
    text = output(result)
    assert "'CALL sneaky_commit()' ended the test transaction" in text, text
    assert "_audit rebuilt (a test committed to it for real)" in text, text
    audit = project.test_db_name("_audit")
    assert project.query("SELECT count(*) FROM event", audit) == [(0,)]
    assert project.query("SELECT version_num FROM alembic_version", audit) == [("0001",)]


@pytest.mark.backends("mariadb")
def test_a_bind_database_of_a_killed_build_is_not_reused(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MariaDB commits DDL at once: a run killed while the upgrade migrates the audit bind
    leaves its table made but not stamped. The audit database is marked built only after
    the whole upgrade, so the next run rebuilds it rather than migrate it again."""
    project.write(
        "myapp.py",
        BINDS_APP + "\n\nfrom flask_migrate import Migrate\n\nmigrate = Migrate(db=db)\n"
        "\n\ndef create_migrated_app():\n    app = create_app()\n"
        "    migrate.init_app(app, db)\n    return app\n",
    )
    project.ini(alchemy_flask_app="myapp:create_migrated_app", alchemy_flask_db="myapp:db")
    project.write("migrations/alembic.ini", "[alembic]\n")
    project.write("migrations/env.py", MULTIDB_ENV_PY)
    kill = (
        "    import os, signal\n"
        "    if os.environ.get('KILL_IN_MIGRATION'):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    project.write(
        "migrations/versions/0001_both.py",
        MULTIDB_REVISION.rstrip() + "\n" + kill,
    )
    project.write("test_app.py", BINDS_TESTS)
    monkeypatch.setenv("KILL_IN_MIGRATION", "1")
    killed = project.run_subprocess("-p", "no:randomly", "--alchemy-reuse-db")
    assert killed.ret != 0
    monkeypatch.delenv("KILL_IN_MIGRATION")
    result = project.run("-p", "no:randomly", "--alchemy-reuse-db")
    result.assert_outcomes(passed=2)
    assert "_audit rebuilt (left dirty by an earlier run)" in output(result)


@pytest.mark.backends("sqlite")
def test_no_migrations_builds_from_the_models(project: Project) -> None:
    migrate_project(project, body="raise RuntimeError('must not run')")
    project.run(
        "-p", "no:randomly", "--alchemy-reuse-db", "--alchemy-no-migrations"
    ).assert_outcomes(passed=3)
    tables = project.query("SELECT name FROM sqlite_master WHERE type = 'table'")
    assert tables == [("item",)]


@pytest.mark.backends("sqlite", "postgresql")
def test_a_failing_migration_is_named(project: Project) -> None:
    migrate_project(project, body="op.execute('SELECT * FROM no_such_table')")
    result = project.run()
    assert result.ret != 0
    text = output(result)
    assert "0002" in text and "no_such_table" in text, text


#: A suite whose test classes are the factory's config objects, with pytest-flask's
#: ``app`` fixture given the plugin's app (for its ``client``).
PER_CLASS_CONFTEST = """
import pytest


@pytest.fixture(scope="class")
def alchemy_flask_app_args(request):
    return ((request.cls,), {}) if request.cls else ((), {})


@pytest.fixture
def app(flask_app):
    return flask_app
"""


# -- alongside pytest-flask, per-class config, xdist ----------------------------------------


@pytest.mark.backends("sqlite")
def test_pytest_flask_and_a_config_class_per_test_class(project: Project) -> None:
    flask_project(project, alchemy_flask_app_scope="class")
    project.write("conftest.py", PER_CLASS_CONFTEST)
    project.replace_tests(
        "test_pf.py",
        """
        from flask import request
        from myapp import Item

        class TestGreen:
            COLOUR = "green"

            def test_client_commits(self, client, app):
                assert app.config["COLOUR"] == "green"
                assert request.path == "/"  # pytest-flask's request context
                assert client.post("/items", json={"name": "x"}).json == {"count": 1}

            def test_rolled_back(self, app):
                assert Item.query.count() == 0

        class TestBlue:
            COLOUR = "blue"

            def test_own_app(self, app):
                assert app.config["COLOUR"] == "blue"
                assert len(app.extensions["made"]) == 1
        """,
    )
    project.run("-p", "no:randomly").assert_outcomes(passed=3)


@pytest.mark.backends("sqlite", "mariadb")
def test_flask_binds_under_xdist(project: Project) -> None:
    project.write("myapp.py", BINDS_APP)
    project.ini(alchemy_flask_app="myapp:create_bound_app", alchemy_flask_db="myapp:db")
    project.write("test_app.py", BINDS_TESTS)
    project.write("test_more.py", BINDS_TESTS)
    project.run("-n", "2", "-p", "no:randomly").assert_outcomes(passed=4)
    assert project.databases() == set()


# -- bad input -------------------------------------------------------------------------------

BAD_FACTORIES = {
    "creator": (
        "from flask import Flask\n"
        "from sqlalchemy import create_engine\n"
        "from myapp import db\n"
        "def create_app():\n"
        "    app = Flask(__name__)\n"
        "    other = create_engine('sqlite:///other.db')\n"
        "    app.config['SQLALCHEMY_ENGINE_OPTIONS'] = {'creator': other.raw_connection}\n"
        "    db.init_app(app)\n"
        "    return app\n",
        ["sets a 'creator' in SQLALCHEMY_ENGINE_OPTIONS", "connect_args"],
    ),
    "raises": (
        "def create_app():\n    raise ValueError('no config here')\n",
        ["alchemy_flask_app = badapp:create_app raised ValueError: no config here"],
    ),
    "needs arguments": (
        "def create_app(config):\n    return None\n",
        ["alchemy_flask_app = badapp:create_app raised TypeError", "alchemy_flask_app_args"],
    ),
    "returns no app": (
        "def create_app():\n    return 42\n",
        ["returned a int, not a Flask app"],
    ),
    "connects elsewhere": (
        "from sqlalchemy import create_engine\n"
        "from myapp import create_app as make\n"
        "def create_app():\n"
        "    try:\n"
        "        create_engine('sqlite:///other.db').connect()\n"
        "    except Exception:\n"
        "        pass\n"
        "    return make()\n",
        ["connected to", "other.db", "not the test database"],
    ),
}


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("case", sorted(BAD_FACTORIES))
def test_a_bad_factory_stops_the_run(project: Project, case: str) -> None:
    source, expected = BAD_FACTORIES[case]
    project.write("myapp.py", APP)
    project.write("badapp.py", source)
    project.ini(alchemy_flask_app="badapp:create_app", alchemy_flask_db="myapp:db")
    project.write("test_app.py", "def test_app(flask_app):\n    raise AssertionError('no')\n")
    result = project.run()
    text = output(result)
    assert result.ret != 0 and "AssertionError" not in text
    for part in expected:
        assert part in text, text
    assert not (project.path / "other.db").exists() and not (project.path / "audit.db").exists()


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(
    ("ini", "expected"),
    [
        (
            {"alchemy_flask_db": "myapp:Item"},
            "is the class Item, not the Flask-SQLAlchemy extension",
        ),
        ({"alchemy_flask_db": "myapp:db", "alchemy_flask_app": "myapp:DevConfig.X"}, "has no"),
        ({"alchemy_flask_app": "myapp:create_app"}, "alchemy_flask_db is not"),
        ({"alchemy_bind_urls": "audit = sqlite://", "alchemy_flask_app": ""}, "is not set"),
        ({"alchemy_bind_urls": "audit sqlite://", "alchemy_flask_db": "myapp:db"}, "key = url"),
        (
            {
                "alchemy_flask_app_scope": "test",
                "alchemy_flask_app": "myapp:create_app",
                "alchemy_flask_db": "myapp:db",
            },
            "not a pytest scope",
        ),
    ],
)
def test_bad_flask_settings(project: Project, ini: dict[str, str], expected: str) -> None:
    project.write("myapp.py", APP)
    ini.setdefault("alchemy_flask_app", "myapp:create_app")
    project.ini(**ini)
    project.write("test_app.py", "def test_app(flask_app):\n    raise AssertionError('no')\n")
    result = project.run()
    text = output(result)
    assert result.ret != 0 and "AssertionError" not in text
    assert expected in text, text


# -- a suite shaped like a real one: Continuum, a config class per test class, pytest-flask --

CONTINUUM_APP = """
import sqlalchemy as sa
from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy_continuum import make_versioned

make_versioned(user_cls=None)
db = SQLAlchemy()


class Article(db.Model):
    __versioned__ = {}
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(50))


sa.orm.configure_mappers()


class Config:
    SQLALCHEMY_DATABASE_URI = "sqlite:///dev.db"


def create_app(config=Config):
    app = Flask(__name__)
    app.config.from_object(config)
    db.init_app(app)

    @app.post("/edit")
    def edit():
        article = Article(name="v1")
        db.session.add(article)
        db.session.commit()
        article.name = app.config["NEW_NAME"]
        db.session.commit()
        return jsonify(versions=[v.name for v in article.versions])

    return app
"""


def test_a_continuum_suite_with_a_config_class_per_test_class(project: Project) -> None:
    pytest.importorskip("sqlalchemy_continuum")
    project.write("myapp.py", CONTINUUM_APP)
    project.ini(
        alchemy_flask_app="myapp:create_app",
        alchemy_flask_db="myapp:db",
        alchemy_flask_app_scope="function",
    )
    project.write("conftest.py", PER_CLASS_CONFTEST)
    project.write(
        "test_articles.py",
        """
        from sqlalchemy_continuum import version_class
        from myapp import Article, Config

        class TestEdit(Config):
            NEW_NAME = "v2"

            def test_versions(self, client, db_session):
                assert client.post("/edit").json == {"versions": ["v1", "v2"]}
                assert db_session.query(version_class(Article)).count() == 2

            def test_none_left(self, app):
                assert Article.query.count() == 0
                assert version_class(Article).query.count() == 0

        class TestOtherName(Config):
            NEW_NAME = "other"

            def test_versions(self, client):
                assert client.post("/edit").json == {"versions": ["v1", "other"]}
        """,
    )
    # In a subprocess: make_versioned() adds listeners to SQLAlchemy's classes for good.
    result = project.run_subprocess("-p", "no:randomly", "--alchemy-reuse-db")
    result.assert_outcomes(passed=3)
    assert project.query("SELECT count(*) FROM article_version") == [(0,)]
    assert not list(project.path.rglob("*.db"))
