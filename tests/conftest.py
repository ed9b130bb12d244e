"""Shared test machinery: every behaviour runs against SQLite, PostgreSQL and MariaDB.

Each test writes a small project with ``pytester`` and runs pytest on it in-process
(``project.run``), then asserts on the outcome and on what the run left on the server.
Server backends get a fresh base database name per test, so tests never share a test
database. Without a reachable server the backend's tests skip, unless CI=true, where
they fail: a green CI never hides a backend.
"""

from __future__ import annotations

import contextlib
import os
import socket
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from pytest_alchemy._settings import sqlite_dir

# pytester restores sys.modules after each in-process run. Drivers with C extensions
# must not be imported afresh by every run (their exception classes would stop matching),
# so they are imported once here, before any run.
for _module in (
    "psycopg",
    "pymysql",
    "alembic.command",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.ext.asyncio",  # greenlet
    "flask_sqlalchemy",
):
    with contextlib.suppress(ImportError):  # the dev extra installs them all
        __import__(_module)

SERVERS = {
    "postgresql": ("POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    "mariadb": ("MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
BACKENDS = ["sqlite", "postgresql", "mariadb"]


def _reachable(url: str) -> bool:
    parsed = make_url(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 0), 2):
            return True
    except OSError:
        return False


@dataclass
class Backend:
    """One database backend as the tests see it."""

    name: str
    server_url: str | None = None
    base: str = field(default_factory=lambda: f"pa_{uuid.uuid4().hex[:10]}")

    @property
    def url(self) -> str | None:
        """The ``--alchemy-url`` to pass (``None``: the embedded SQLite default)."""
        if self.server_url is None:
            return None
        return make_url(self.server_url).set(database=self.base).render_as_string(False)

    def args(self) -> list[str]:
        return ["--alchemy-url", self.url] if self.url else []

    def admin_engine(self) -> Engine:
        assert self.server_url is not None
        return create_engine(self.server_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")

    def databases(self, rootdir: Path) -> set[str]:
        """Names of the databases that exist for this test's base name."""
        if self.server_url is None:
            folder = sqlite_dir(rootdir)
            return {p.stem for p in folder.glob("*.db")} if folder.exists() else set()
        engine = self.admin_engine()
        try:
            with engine.connect() as conn:
                if self.name == "postgresql":
                    rows = conn.execute(text("SELECT datname FROM pg_database"))
                else:
                    rows = conn.execute(text("SELECT schema_name FROM information_schema.schemata"))
                return {r[0] for r in rows if self.base in r[0]}
        finally:
            engine.dispose()

    def test_db_url(self, rootdir: Path, name: str | None = None) -> str:
        """URL of a test database (by default ``test_<base>``, or the SQLite file)."""
        if self.server_url is None:
            stem = name or "test_alchemy"
            return f"sqlite:///{sqlite_dir(rootdir) / (stem + '.db')}"
        name = name or f"test_{self.base}"
        return make_url(self.server_url).set(database=name).render_as_string(False)

    def query(self, rootdir: Path, sql: str, name: str | None = None) -> list[tuple[Any, ...]]:
        """Run ``sql`` on a test database that a run left behind."""
        engine = create_engine(self.test_db_url(rootdir, name), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def execute(self, rootdir: Path, sql: str, name: str | None = None) -> None:
        """Run and commit ``sql`` on a test database that a run left behind."""
        engine = create_engine(self.test_db_url(rootdir, name), poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def create_foreign(self, rootdir: Path, name: str) -> None:
        """Create a database the plugin did not create (no marker), with one table."""
        if self.server_url is None:
            folder = sqlite_dir(rootdir)
            folder.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{folder / (name + '.db')}"
        else:
            engine = self.admin_engine()
            try:
                with engine.connect() as conn:
                    quoted = engine.dialect.identifier_preparer.quote(name)
                    conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
            finally:
                engine.dispose()
            url = make_url(self.server_url).set(database=name).render_as_string(False)
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE precious (id INTEGER PRIMARY KEY)")
                conn.exec_driver_sql("INSERT INTO precious (id) VALUES (42)")
        finally:
            engine.dispose()

    def drop_all(self, rootdir: Path) -> None:
        """Remove whatever this test's base name left on the server."""
        if self.server_url is None:
            folder = sqlite_dir(rootdir)
            for path in folder.glob("*") if folder.exists() else []:
                path.unlink()
            return
        engine = self.admin_engine()
        try:
            with engine.connect() as conn:
                for name in self.databases(rootdir):
                    quoted = engine.dialect.identifier_preparer.quote(name)
                    if self.name == "postgresql":
                        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
                    else:
                        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}")
        finally:
            engine.dispose()


def _server_backend(name: str) -> Backend:
    env, default = SERVERS[name]
    url = os.environ.get(env, default)
    if not _reachable(url):
        reason = f"{name} server not reachable at {make_url(url).host}:{make_url(url).port}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: a backend may not be skipped)", pytrace=False)
        pytest.skip(f"{reason}; set {env} or start it (CI=true makes this a failure)")
    return Backend(name, url)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses ``backend`` runs on each backend, or on those its
    ``@pytest.mark.backends(...)`` names."""
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        names = list(marker.args) if marker is not None else BACKENDS
        metafunc.parametrize("backend", names, indirect=True)


@pytest.fixture(autouse=True)
def _user_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SQLite test databases go to the user's cache directory: a temporary one per test,
    never the real user's (pytester's subprocess runs inherit it)."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each backend in turn; skips (fails under CI=true) when its server is down."""
    name: str = request.param
    backend = Backend(name) if name == "sqlite" else _server_backend(name)
    pytester: pytest.Pytester = request.getfixturevalue("pytester")
    try:
        yield backend
    finally:
        backend.drop_all(pytester.path)


class Project:
    """A small pytest project on one backend, written and run by pytester."""

    def __init__(self, pytester: pytest.Pytester, backend: Backend) -> None:
        self.pytester = pytester
        self.backend = backend
        self.path = pytester.path

    def ini(self, **settings: str | list[str]) -> None:
        """Write pytest.ini with these alchemy settings (warnings are errors; pytest-asyncio,
        installed for the async tests, is told its fixtures' default loop scope, which it
        warns about otherwise)."""
        lines = ["[pytest]", "filterwarnings = error", "pythonpath = ."]
        settings = {"asyncio_default_fixture_loop_scope": "function", **settings}
        for key, value in settings.items():
            if isinstance(value, list):
                lines.append(f"{key} =")
                lines.extend(f"    {v}" for v in value)
            else:
                lines.append(f"{key} = {value}")
        self.pytester.makefile(".ini", pytest="\n".join(lines) + "\n")

    def write(self, name: str, source: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
        return path

    def replace_tests(self, name: str, source: str) -> Path:
        """Replace the project's test modules with one (a new file name for every run,
        so no cached bytecode of an earlier version is ever used)."""
        for old in self.path.glob("test_*.py"):
            old.unlink()
        return self.write(name, source)

    def test_db_name(self, suffix: str = "") -> str:
        """The name the plugin gives this project's test database."""
        base = "alchemy" if self.backend.name == "sqlite" else self.backend.base
        return f"test_{base}{suffix}"

    def run(self, *args: str) -> pytest.RunResult:
        """Run pytest on the project with this backend's URL, in-process."""
        return self.pytester.runpytest(*self.backend.args(), "-p", "no:cacheprovider", *args)

    def run_subprocess(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(
            *self.backend.args(), "-p", "no:cacheprovider", *args
        )

    def databases(self) -> set[str]:
        return self.backend.databases(self.path)

    def query(self, sql: str, name: str | None = None) -> list[tuple[Any, ...]]:
        return self.backend.query(self.path, sql, name)

    def execute(self, sql: str, name: str | None = None) -> None:
        """Write to a kept test database between runs (as another tool would)."""
        self.backend.execute(self.path, sql, name)


def summary(result: pytest.RunResult) -> str:
    """The plugin's one terminal-summary line (``alchemy: ...``, not the header's)."""
    lines = [
        line
        for line in result.stdout.lines
        if line.startswith("alchemy: ") and not line.endswith("]")
    ]
    assert len(lines) == 1, result.stdout.str()
    return lines[0]


def output(result: pytest.RunResult) -> str:
    """Everything a run printed."""
    return result.stdout.str() + "\n" + result.stderr.str()


@pytest.fixture
def project(
    pytester: pytest.Pytester, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> Project:
    monkeypatch.delenv("PYTEST_ALCHEMY_URL", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    return Project(pytester, backend)


#: A small declarative model used by many tests: ``models.py`` in the project.
MODELS = """
    import os
    from sqlalchemy import ForeignKey, String, create_engine
    from sqlalchemy.orm import (
        DeclarativeBase, Mapped, mapped_column, relationship, scoped_session, sessionmaker,
    )

    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str] = mapped_column(String(100), unique=True)
        posts: Mapped[list["Post"]] = relationship(back_populates="author")

    class Post(Base):
        __tablename__ = "posts"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(String(100))
        author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
        author: Mapped[User] = relationship(back_populates="posts")

    # The application's own objects, made at import time from its development URL.
    engine = create_engine(os.environ.get("APP_DATABASE_URL", "sqlite:///dev.db"))
    SessionLocal = sessionmaker(bind=engine)
    ScopedSession = scoped_session(sessionmaker(bind=engine))
"""


@pytest.fixture
def models_project(project: Project) -> Project:
    """A project with ``models.py`` and the settings that route its engine and sessions."""
    project.write("models.py", MODELS)
    project.ini(
        alchemy_metadata="models:Base",
        alchemy_engines="models:engine",
        alchemy_sessionmakers=["models:SessionLocal", "models:ScopedSession"],
        alchemy_url_env="APP_DATABASE_URL",
    )
    return project
