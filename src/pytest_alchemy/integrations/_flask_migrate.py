"""The schema from Flask-Migrate's migrations directory: ``upgrade heads`` run as
Flask-Migrate runs it, inside an app context of an app the factory makes for the build.

Flask-Migrate's ``migrations/alembic.ini`` is not standalone (``Migrate.get_config``
sets ``script_location`` to the directory, and the stock env.py finds its engine through
``current_app.extensions["migrate"].db``), so the build calls the factory, pushes an
app context and runs ``alembic.command.upgrade`` with the config Flask-Migrate makes
(https://flask-migrate.readthedocs.io/en/latest/#api-reference). Not
``flask_migrate.upgrade()``: it turns errors into a log line and ``sys.exit(1)``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Dialect, Engine

from .._errors import AlchemyError
from ..provision import Provisioner
from ..schema._alembic import UPGRADE, _logging_restored, _reached, _skipped
from ..schema._alembic_errors import explain
from ..schema._guard import ForeignConnectionRefused, only_connections_to
from ..schema._imports import own_sources
from ..schema._source import Fingerprint, digest, libraries


def find_migrations(db: Any, roots: Sequence[Path]) -> Path | None:
    """The migrations directory Flask-Migrate would use, when it holds an env.py: the
    ``directory`` of a ``flask_migrate.Migrate`` object kept at module level by the
    application, else ``migrations`` (Flask-Migrate's default); a relative one is looked
    for under each of ``roots`` in turn (the current directory first, as Flask-Migrate
    resolves it; then the project's, so that pytest run from elsewhere finds it too)."""
    try:
        from flask_migrate import Migrate
    except ImportError:
        return None
    directories = ["migrations"]  # Flask-Migrate's default
    for name, module in list(sys.modules.items()):
        if name.startswith(("flask_migrate", "_pytest", "pytest")):
            continue
        for value in list(getattr(module, "__dict__", {}).values()):
            if isinstance(value, Migrate) and getattr(value, "db", db) in (db, None):
                directories.insert(0, str(value.directory))
    for directory in directories:
        for root in roots:
            path = (root / directory).resolve()
            if (path / "env.py").is_file():
                return path
    return None


def migrations_of(app: Any, roots: Sequence[Path]) -> Path | None:
    """The migrations directory of ``app``'s Flask-Migrate extension, when it holds an
    env.py (a relative one looked for under each of ``roots``)."""
    extension = app.extensions.get("migrate")
    if extension is None:
        return None
    for root in roots:
        path = (root / str(extension.directory)).resolve()
        if (path / "env.py").is_file():
            return path
    return None


def probe_migrations(make_app: Callable[[], Any], roots: Sequence[Path]) -> Path | None:
    """The migrations directory of the app ``make_app()`` returns, with every database
    connection refused while it runs (its engines are disposed after); None when it
    raises (it needs arguments, or connects while it runs) or has no Flask-Migrate."""

    def refuse(dialect: Dialect, conn_rec: Any, cargs: Any, cparams: Any) -> None:
        raise ForeignConnectionRefused("any database, while the app's migrations are sought")

    event.listen(Engine, "do_connect", refuse)
    try:
        app = make_app()
    except BaseException:
        return None
    finally:
        event.remove(Engine, "do_connect", refuse)
    if not isinstance(getattr(app, "extensions", None), dict):
        return None  # not a Flask app: making the real one says so
    try:
        return migrations_of(app, roots)
    finally:
        _dispose(app)


class FlaskMigrateSchema:
    """``upgrade heads`` of a Flask-Migrate migrations directory, in an app context of an
    app that :attr:`make_app` returns (set by the pytest layer: the factory called with
    the test's arguments, its config pinned to the database being built)."""

    def __init__(self, directory: Path, setting: str, make_app: Callable[[], Any]) -> None:
        self.directory = directory
        self.setting = setting
        self.description = f"Flask-Migrate's migrations in {directory} ({setting})"
        self.make_app = make_app
        #: The URLs of the other binds' test databases, which the build migrates too.
        self.bind_urls: Callable[[], Sequence[URL]] = list

    def fingerprint(self, dialect: Dialect) -> Fingerprint:
        """Named parts: "migrations" (every file of the directory but bytecode and
        hidden ones, env.py and alembic.ini included), "imported modules" (the source
        of the project's modules they import) and "libraries" (SQLAlchemy, Alembic,
        Flask-Migrate and Flask-SQLAlchemy versions)."""
        files = sorted(
            path
            for path in self.directory.rglob("*")
            if path.is_file() and not _skipped(path.relative_to(self.directory))
        )
        migrations = [b"flask-migrate", dialect.name.encode()]
        for path in files:
            migrations.extend([path.relative_to(self.directory).as_posix().encode()])
            migrations.append(path.read_bytes())
        scripts = [path for path in files if path.suffix == ".py"]
        return {
            "migrations": digest(migrations),
            "imported modules": digest([b"imported", *own_sources(scripts, list(sys.path))]),
            "libraries": libraries("alembic", "flask-migrate", "flask-sqlalchemy"),
        }

    def build(self, engine: Engine, provisioner: Provisioner, test_url: URL) -> None:
        from alembic import command
        from alembic.runtime.environment import EnvironmentContext
        from alembic.script import ScriptDirectory

        env_py = self.directory / "env.py"
        with _logging_restored(), _quiet_flask_sqlalchemy():
            app = self.make_app()
            try:
                with app.app_context():
                    cfg = self._config(app)
                    scripts = ScriptDirectory.from_config(cfg)
                    current: set[str] = set()

                    def read_current(rev: Any, context: Any) -> list[Any]:
                        current.update(context.get_current_heads())
                        return []

                    def upgrade() -> None:
                        command.upgrade(cfg, "heads")

                    def read() -> None:
                        with EnvironmentContext(cfg, scripts, fn=read_current, dont_mutate=True):
                            scripts.run_env()

                    for action, run in ((UPGRADE, upgrade), ("'alembic current'", read)):
                        try:
                            also = self.bind_urls()
                            with only_connections_to(test_url, provisioner, also):
                                run()
                        except ForeignConnectionRefused as exc:
                            raise AlchemyError(
                                f"pytest-alchemy: the Flask-Migrate env.py at {env_py} tried "
                                f"to connect to {exc.target}, not to the test database "
                                f"{test_url.database!r}. It was stopped before it changed "
                                "anything.\nFix: in env.py, take the engine from "
                                "current_app.extensions['migrate'].db, as Flask-Migrate's "
                                "template does."
                            ) from None
                        except AlchemyError:
                            raise
                        except Exception as exc:
                            raise explain(
                                exc,
                                action=action,
                                scripts=scripts,
                                env_py=env_py,
                                config_shown=str(self.directory / "alembic.ini"),
                                description=self.description,
                                test_url=test_url,
                            ) from None
            finally:
                _dispose(app)
        missing = set(scripts.get_heads()) - _reached(scripts, current)
        if missing:
            raise AlchemyError(
                f"pytest-alchemy: after {UPGRADE} the test database is at "
                f"{sorted(current) or 'no revision'}, which does not reach the heads "
                f"{sorted(missing)} ({self.description}).\nFix: check that env.py runs "
                "the migrations on the engine of current_app.extensions['migrate'].db."
            )

    def _config(self, app: Any) -> Any:
        extension = app.extensions.get("migrate")
        if extension is None:
            raise AlchemyError(
                f"pytest-alchemy: {self.directory} holds an env.py, but the app made by "
                f"{self.setting} does not use Flask-Migrate (no Migrate(app, db)).\nFix: "
                "call Migrate(app, db) in the factory, or build from the models with "
                "--alchemy-no-migrations."
            )
        return extension.migrate.get_config(str(self.directory))


class GroupMember:
    """The schema of a further bind's test database when Flask-Migrate migrates every
    bind in one ``upgrade`` (its multiple-database template): it shares the group's
    fingerprint. Made before the default bind's database, it builds nothing (that
    database's build migrates it); made after (rebuilt once a test committed to it for
    real, or a bind first seen then), it runs the group's upgrade, which finds the other
    databases at their heads and migrates this one."""

    def __init__(
        self, group: FlaskMigrateSchema, key: str, group_built: Callable[[], bool]
    ) -> None:
        self.group = group
        self.description = f"{group.description}, bind {key!r}"
        self._group_built = group_built

    def fingerprint(self, dialect: Dialect) -> Fingerprint:
        return self.group.fingerprint(dialect)

    def built_elsewhere(self) -> bool:
        """Whether the default bind's build is still to make this schema (the database
        is marked built only after it: see ``TestDatabase.confirm``)."""
        return not self._group_built()

    def build(self, engine: Engine, provisioner: Provisioner, test_url: URL) -> None:
        if self._group_built():
            self.group.build(engine, provisioner, test_url)


@contextmanager
def _quiet_flask_sqlalchemy() -> Iterator[None]:
    """Flask-Migrate's env.py template calls ``db.get_engine()`` first, which
    Flask-SQLAlchemy 3.1 deprecates (the template catches only TypeError and
    AttributeError, so a run with warnings as errors would fail in the template)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'get_engine' is deprecated", DeprecationWarning)
        yield


def _dispose(app: Any) -> None:
    extension = app.extensions.get("sqlalchemy")
    if extension is None:
        return
    with app.app_context():
        for engine in extension.engines.values():
            engine.dispose()
