"""Benchmark: what pytest-alchemy costs against the hand-written recipe it replaces.

It writes throw-away test projects (30 declarative tables, generated tests that each insert
3 rows with the ORM, commit and count), runs each with ``python -m pytest`` in a subprocess
once per strategy and backend, and prints a Markdown table of medians:

* ``plugin``: ``db_session`` from the plugin, ``alchemy_metadata`` in the ini; a fresh
  test database every run.
* ``plugin-reuse``: the same with ``--alchemy-reuse-db``, timed after a warm-up run kept
  the database, so the schema is not rebuilt.
* ``recipe``: a hand-written conftest (plugin disabled): session engine, own test
  database, ``create_all``; per test a connection, an outer transaction and a
  ``Session(join_transaction_mode="create_savepoint")``, rolled back after.
* ``no-isolation``: a hand-written conftest that really commits (tables created once
  per run, never cleaned).
* ``plugin-async``: the same tests as ``async def`` tests on ``async_db_session`` from
  the plugin, under pytest-asyncio (auto mode); the plugin's async driver over the sync
  one (aiosqlite, psycopg_async, aiomysql).
* ``recipe-async``: the hand-written async conftest recipe (plugin disabled): session
  ``AsyncEngine`` on its own test database, ``run_sync(create_all)``; per test an
  ``AsyncConnection``, an outer transaction and an
  ``AsyncSession(join_transaction_mode="create_savepoint")``, rolled back after.

The per-test cost is ``(t(N) - t(10)) / (N - 10)`` from the medians of a project of N
tests and one of 10; ratios are to ``recipe`` (to ``recipe-async`` for the async
strategies). Every database it creates is named ``test_pa_bench*`` and dropped.

    .venv/bin/python bench/run.py [--tests 300] [--repeat 3]
                                      [--backends sqlite,postgresql,mariadb]
                                      [--strategies plugin,plugin-reuse,recipe,...]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

STRATEGIES = (
    "plugin",
    "plugin-reuse",
    "recipe",
    "no-isolation",
    "plugin-async",
    "recipe-async",
)
#: Strategies whose tests are ``async def`` tests on ``async_db_session``.
ASYNC_STRATEGIES = ("plugin-async", "recipe-async")
BACKENDS = ("sqlite", "postgresql", "mariadb")
#: Base URLs of the server backends (the plugin's test database is ``test_<base>``).
SERVER_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/pa_bench",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/pa_bench",
}
#: The async driver per backend: what the plugin picks over the sync one, and what the
#: async recipe connects with.
ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+psycopg_async",
    "mariadb": "mysql+aiomysql",
}
#: Base database per plugin strategy: each has a test database of its own, so a fresh
#: run of one never drops the database that the other keeps.
PLUGIN_BASES = {
    "plugin": "pa_bench",
    "plugin-reuse": "pa_bench_reuse",
    "plugin-async": "pa_bench_async",
}
#: Databases that the hand-written conftests create and drop themselves.
OWN_DATABASES = {
    "recipe": "test_pa_bench_recipe",
    "no-isolation": "test_pa_bench_noiso",
    "recipe-async": "test_pa_bench_recipe_async",
}
#: Every database name a run can leave behind on a server if it is interrupted.
ALL_DATABASES = (*(f"test_{b}" for b in PLUGIN_BASES.values()), *OWN_DATABASES.values())
TABLES = 30
SMALL = 10
TESTS_PER_FILE = 50


class BenchError(Exception):
    """A run failed: the message has its command and output."""


# -- the generated project ------------------------------------------------------------------


def models_source() -> str:
    lines = [
        '"""30 tables; every fifth one has a foreign key to the one before it."""',
        "",
        "from __future__ import annotations",
        "",
        "from sqlalchemy import ForeignKey, String",
        "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column",
        "",
        "",
        "class Base(DeclarativeBase):",
        "    pass",
    ]
    for i in range(TABLES):
        lines += [
            "",
            "",
            f"class T{i:02d}(Base):",
            f'    __tablename__ = "t{i:02d}"',
            "    id: Mapped[int] = mapped_column(primary_key=True)",
            "    name: Mapped[str] = mapped_column(String(50))",
            "    value: Mapped[int] = mapped_column(default=0)",
        ]
        if i % 5 == 4:
            lines.append(
                f'    parent_id: Mapped[int | None] = mapped_column(ForeignKey("t{i - 1:02d}.id"))'
            )
    return "\n".join(lines) + "\n"


def test_sources(count: int, exact: bool, asynchronous: bool = False) -> dict[str, str]:
    """Test modules of up to TESTS_PER_FILE tests; test i writes to table i % TABLES.

    Isolated strategies assert the exact count; ``no-isolation`` leaks rows from earlier
    tests, so it can only assert at least 3. Async tests are the same tests written as
    ``async def`` on ``async_db_session``, awaiting ``commit()`` and ``scalar()``."""
    check = "== 3" if exact else ">= 3"
    if asynchronous:
        define, session, wait = "async def", "async_db_session", "await "
    else:
        define, session, wait = "def", "db_session", ""
    files: dict[str, str] = {}
    for start in range(0, count, TESTS_PER_FILE):
        numbers = range(start, min(start + TESTS_PER_FILE, count))
        used = sorted({i % TABLES for i in numbers})
        names = ", ".join(f"T{t:02d}" for t in used)
        body = ["from sqlalchemy import func, select", "", f"from models import {names}"]
        for i in numbers:
            model = f"T{i % TABLES:02d}"
            body += [
                "",
                "",
                f"{define} test_{i:04d}({session}):",
                f"    {session}.add_all(",
                f'        [{model}(name="a", value=1), {model}(name="b", value=2), '
                f'{model}(name="c", value=3)]',
                "    )",
                f"    {wait}{session}.commit()",
                f"    assert {wait}{session}.scalar(select(func.count()).select_from({model})) "
                f"{check}",
            ]
        files[f"test_gen_{start // TESTS_PER_FILE:02d}.py"] = "\n".join(body) + "\n"
    return files


_CONFTEST_COMMON = '''\
"""Hand-written test database set-up, as a project without pytest-alchemy has it."""

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from models import Base

DB_URL = make_url(os.environ["PA_BENCH_URL"])
ADMIN_URL = os.environ.get("PA_BENCH_ADMIN_URL")  # unset for SQLite


def _server_ddl(statement):
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = admin.dialect.identifier_preparer.quote(DB_URL.database)
            conn.exec_driver_sql(statement.format(name=name))
    finally:
        admin.dispose()


def _create_database():
    if ADMIN_URL is None:
        Path(DB_URL.database).unlink(missing_ok=True)
    else:
        _server_ddl("DROP DATABASE IF EXISTS {name}")
        _server_ddl("CREATE DATABASE {name}")


def _drop_database():
    if ADMIN_URL is None:
        Path(DB_URL.database).unlink(missing_ok=True)
    else:
        _server_ddl("DROP DATABASE IF EXISTS {name}")
'''

RECIPE_CONFTEST = (
    _CONFTEST_COMMON
    + """

@pytest.fixture(scope="session")
def engine():
    _create_database()
    engine = create_engine(DB_URL)
    if DB_URL.get_backend_name() == "sqlite":
        # pysqlite emits no BEGIN before SAVEPOINT: take over transaction control.
        @event.listens_for(engine, "connect")
        def _no_legacy_transactions(dbapi_connection, connection_record):
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _emit_begin(conn):
            conn.exec_driver_sql("BEGIN")

    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()
    _drop_database()


@pytest.fixture
def db_session(engine):
    connection = engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    yield session
    session.close()
    transaction.rollback()
    connection.close()
"""
)

NO_ISOLATION_CONFTEST = (
    _CONFTEST_COMMON
    + """

@pytest.fixture(scope="session")
def engine():
    _create_database()
    engine = create_engine(DB_URL)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()
    _drop_database()


@pytest.fixture
def db_session(engine):
    with Session(engine) as session:
        yield session
"""
).replace("from sqlalchemy import create_engine, event", "from sqlalchemy import create_engine")


RECIPE_ASYNC_CONFTEST = '''\
"""Hand-written async test database set-up, as a project without pytest-alchemy has it."""

import os
from pathlib import Path

import pytest_asyncio
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from models import Base

DB_URL = make_url(os.environ["PA_BENCH_URL"])
ADMIN_URL = os.environ.get("PA_BENCH_ADMIN_URL")  # unset for SQLite


async def _server_ddl(statement):
    admin = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            name = admin.dialect.identifier_preparer.quote(DB_URL.database)
            await conn.exec_driver_sql(statement.format(name=name))
    finally:
        await admin.dispose()


async def _create_database():
    if ADMIN_URL is None:
        Path(DB_URL.database).unlink(missing_ok=True)
    else:
        await _server_ddl("DROP DATABASE IF EXISTS {name}")
        await _server_ddl("CREATE DATABASE {name}")


async def _drop_database():
    if ADMIN_URL is None:
        Path(DB_URL.database).unlink(missing_ok=True)
    else:
        await _server_ddl("DROP DATABASE IF EXISTS {name}")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine():
    await _create_database()
    engine = create_async_engine(DB_URL)
    if DB_URL.get_backend_name() == "sqlite":
        # aiosqlite emits no BEGIN before SAVEPOINT: take over transaction control,
        # through the sync engine's events.
        @event.listens_for(engine.sync_engine, "connect")
        def _no_legacy_transactions(dbapi_connection, connection_record):
            dbapi_connection.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _emit_begin(conn):
            conn.exec_driver_sql("BEGIN")

    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()
    await _drop_database()


@pytest_asyncio.fixture(loop_scope="session")
async def async_db_session(engine):
    connection = await engine.connect()
    transaction = await connection.begin()
    session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint")
    yield session
    await session.close()
    await transaction.rollback()
    await connection.close()
'''


def write_project(path: Path, strategy: str, count: int) -> None:
    path.mkdir(parents=True)
    ini = ["[pytest]", "pythonpath = ."]
    asynchronous = strategy in ASYNC_STRATEGIES
    if asynchronous:
        ini += ["asyncio_mode = auto", "asyncio_default_fixture_loop_scope = function"]
    if strategy.startswith("plugin"):
        ini.append("alchemy_metadata = models:Base")
    elif strategy == "recipe":
        (path / "conftest.py").write_text(RECIPE_CONFTEST)
    elif strategy == "recipe-async":
        # The pooled driver connections belong to the loop that opened them: the tests
        # run in the session loop of the engine fixture.
        ini.append("asyncio_default_test_loop_scope = session")
        (path / "conftest.py").write_text(RECIPE_ASYNC_CONFTEST)
    else:
        (path / "conftest.py").write_text(NO_ISOLATION_CONFTEST)
    (path / "pytest.ini").write_text("\n".join(ini) + "\n")
    (path / "models.py").write_text(models_source())
    sources = test_sources(count, exact=strategy != "no-isolation", asynchronous=asynchronous)
    for name, source in sources.items():
        (path / name).write_text(source)


# -- running pytest ---------------------------------------------------------------------------


@dataclass
class Runner:
    """Runs pytest in the generated projects, with an environment of its own."""

    root: Path
    verbose: bool = False
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        env = dict(os.environ)
        for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_ALCHEMY_URL"):
            env.pop(name, None)
        # The plugin's SQLite files and pytest's tmp_path go under the benchmark's
        # temporary directory, removed with it.
        env["PYTEST_DEBUG_TEMPROOT"] = str(self.root / "pytest-tmp")
        (self.root / "pytest-tmp").mkdir()
        self.env = env

    def run(
        self,
        project: Path,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        expect_passed: int | None = None,
    ) -> Timing:
        """Wall time and the pytest process's CPU time of one run; a failed run raises
        BenchError."""
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
        cpu_before = _children_cpu()
        start = time.perf_counter()
        proc = subprocess.run(
            command,
            cwd=project,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - start
        cpu = _children_cpu() - cpu_before
        output = proc.stdout + proc.stderr
        # pytest's summary line ends its stdout; stderr may end with a warning issued
        # outside pytest's capture (pytest-asyncio's at configure time, in projects with
        # no asyncio_default_fixture_loop_scope).
        tail = proc.stdout.strip().splitlines()[-1:] or [""]
        ok = proc.returncode == 0
        if ok and expect_passed is not None:
            ok = tail[0].startswith(f"{expect_passed} passed") and "error" not in tail[0]
        if not ok:
            raise BenchError(
                f"pytest failed (exit {proc.returncode}) in {project}:\n  "
                f"{' '.join(command)}\n{output[-4000:]}"
            )
        if self.verbose:
            log(
                f"    {elapsed:6.2f}s wall {cpu:6.2f}s cpu  {project.name}: {' '.join(args)}"
                f"  [{tail[0]}]"
            )
        return Timing(elapsed, cpu)


@dataclass(frozen=True)
class Timing:
    wall: float
    #: User + system CPU time of the pytest process (not the database server's).
    cpu: float


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- backends ---------------------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    #: The server's base URL; None for SQLite.
    url: URL | None

    def admin_url(self) -> URL:
        assert self.url is not None
        maintenance = "postgres" if self.name == "postgresql" else "mysql"
        return self.url.set(database=maintenance)

    def async_driver(self, url: URL) -> URL:
        """The URL with the backend's async driver (ASYNC_DRIVERS)."""
        return url.set(drivername=ASYNC_DRIVERS[self.name])

    def unavailable(self, strategies: Sequence[str]) -> str | None:
        """Why the backend cannot be benchmarked, or None."""
        if any(s in ASYNC_STRATEGIES for s in strategies):
            driver = ASYNC_DRIVERS[self.name]
            try:
                make_url(f"{driver}://").get_dialect().import_dbapi()
            except ImportError as exc:
                return f"the async strategies need {driver}'s driver: {exc}"
        if self.url is None:
            return None
        host, port = self.url.host or "127.0.0.1", self.url.port or 0
        try:
            with socket.create_connection((host, port), timeout=2):
                pass
        except OSError as exc:
            return f"nothing listens on {host}:{port} ({exc})"
        try:
            self.existing()
        except Exception as exc:
            first_line = str(exc).strip().splitlines()[0]
            return f"cannot connect to {self.admin_url().render_as_string()}: {first_line}"
        return None

    def existing(self) -> list[str]:
        """Which of the benchmark's database names exist on the server."""
        engine = create_engine(self.admin_url(), poolclass=NullPool)
        query = (
            "SELECT datname FROM pg_database"
            if self.name == "postgresql"
            else "SELECT schema_name FROM information_schema.schemata"
        )
        try:
            with engine.connect() as conn:
                names = set(conn.execute(text(query)).scalars())
        finally:
            engine.dispose()
        return [name for name in ALL_DATABASES if name in names]

    def drop(self, names: Sequence[str]) -> None:
        engine = create_engine(self.admin_url(), poolclass=NullPool, isolation_level="AUTOCOMMIT")
        force = " WITH (FORCE)" if self.name == "postgresql" else ""
        try:
            with engine.connect() as conn:
                for name in names:
                    quoted = engine.dialect.identifier_preparer.quote(name)
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}{force}")
        finally:
            engine.dispose()

    def args(self, strategy: str) -> list[str]:
        if strategy in PLUGIN_BASES:
            args = []
            if self.url is not None:
                url = self.url.set(database=PLUGIN_BASES[strategy])
                args = ["--alchemy-url", url.render_as_string(hide_password=False)]
            if strategy == "plugin-reuse":
                args.append("--alchemy-reuse-db")
            return args
        return ["-p", "no:alchemy"]

    def env(self, strategy: str, project: Path) -> dict[str, str]:
        if strategy in PLUGIN_BASES:
            return {}
        name = OWN_DATABASES[strategy]
        asynchronous = strategy in ASYNC_STRATEGIES
        if self.url is None:
            driver = ASYNC_DRIVERS["sqlite"] if asynchronous else "sqlite"
            return {"PA_BENCH_URL": f"{driver}:///{project / name}.db"}
        url, admin = self.url.set(database=name), self.admin_url()
        if asynchronous:
            url, admin = self.async_driver(url), self.async_driver(admin)
        return {
            "PA_BENCH_URL": url.render_as_string(hide_password=False),
            "PA_BENCH_ADMIN_URL": admin.render_as_string(hide_password=False),
        }


def backend_for(name: str) -> Backend:
    url = SERVER_URLS.get(name)
    return Backend(name, make_url(url) if url else None)


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    strategy: str
    #: Timings of the N-test runs and of the 10-test runs.
    full: list[Timing] = field(default_factory=list)
    small: list[Timing] = field(default_factory=list)

    def median(self, size: Literal["full", "small"], what: Literal["wall", "cpu"]) -> float:
        timings = self.full if size == "full" else self.small
        return statistics.median(t.wall if what == "wall" else t.cpu for t in timings)

    def per_test_ms(self, what: Literal["wall", "cpu"], sizes: tuple[int, int]) -> float:
        """(t(N) - t(10)) / (N - 10) from the medians, in milliseconds."""
        delta = self.median("full", what) - self.median("small", what)
        return delta / (sizes[0] - sizes[1]) * 1000


def bench_backend(
    runner: Runner,
    backend: Backend,
    projects: dict[tuple[str, int], Path],
    sizes: tuple[int, int],
    repeat: int,
    strategies: Sequence[str] = STRATEGIES,
) -> list[Result]:
    strategies = tuple(strategies)
    results = {s: Result(backend.name, s) for s in strategies}
    reuse = "plugin-reuse" in strategies

    def run(strategy: str, size: int) -> Timing:
        project = projects[strategy, size]
        return runner.run(
            project, backend.args(strategy), env=backend.env(strategy, project), expect_passed=size
        )

    try:
        if reuse:
            log(f"{backend.name}: warming the reused database")
            for size in sizes:
                run("plugin-reuse", size)
        for index in range(repeat):
            log(f"{backend.name}: round {index + 1}/{repeat}")
            # Rotate the order each round, so no strategy always runs first.
            shift = index % len(strategies)
            for strategy in strategies[shift:] + strategies[:shift]:
                results[strategy].full.append(run(strategy, sizes[0]))
                results[strategy].small.append(run(strategy, sizes[1]))
    finally:
        if reuse:
            # A run without --alchemy-reuse-db drops the kept database at its end; it has
            # to use db_session, or the plugin never touches the database.
            args = [a for a in backend.args("plugin-reuse") if a != "--alchemy-reuse-db"]
            for size in sizes:
                runner.run(
                    projects["plugin-reuse", size],
                    [*args, "--alchemy-create-db", "-k", "test_0000"],
                    expect_passed=1,
                )
    return [results[s] for s in strategies]


# -- the report -------------------------------------------------------------------------------


def baseline(strategy: str) -> str:
    """The recipe a strategy is compared with: ``recipe-async`` for the async ones."""
    return "recipe-async" if strategy in ASYNC_STRATEGIES else "recipe"


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}x" if base is not None and base > 0 else "n/a"


def table(results: Sequence[Result], sizes: tuple[int, int]) -> str:
    big, small = sizes
    lines = [
        f"| backend | strategy | run of {big} tests, s (min-max) | vs recipe "
        f"| run of {small} tests, s | per test, ms | vs recipe | pytest CPU per test, ms "
        "| vs recipe |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by_key = {(r.backend, r.strategy): r for r in results}
    for result in results:
        # Without its recipe in the run, a strategy's ratios are n/a.
        recipe = by_key.get((result.backend, baseline(result.strategy)))
        full = result.median("full", "wall")
        per_test = result.per_test_ms("wall", sizes)
        cpu = result.per_test_ms("cpu", sizes)
        walls = [t.wall for t in result.full]
        lines.append(
            f"| {result.backend} | {result.strategy} "
            f"| {full:.2f} ({min(walls):.2f}-{max(walls):.2f}) "
            f"| {_ratio(full, recipe and recipe.median('full', 'wall'))} "
            f"| {result.median('small', 'wall'):.2f} "
            f"| {per_test:.2f} | {_ratio(per_test, recipe and recipe.per_test_ms('wall', sizes))} "
            f"| {cpu:.2f} | {_ratio(cpu, recipe and recipe.per_test_ms('cpu', sizes))} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tests", type=int, default=300, help="tests in the large project (default 300)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per measurement; medians (default 3)"
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated, from {', '.join(BACKENDS)} (default: all)",
    )
    parser.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help=f"comma-separated, from {', '.join(STRATEGIES)} (default: all)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every run's time")
    parser.add_argument(
        "--keep", action="store_true", help="keep the generated projects (path on stderr)"
    )
    args = parser.parse_args(argv)
    if args.tests <= SMALL:
        parser.error(f"--tests must be more than {SMALL}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(args.backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)}; choose from {BACKENDS}")
    chosen = {s.strip() for s in args.strategies.split(",") if s.strip()}
    unknown = sorted(chosen - set(STRATEGIES))
    if unknown:
        parser.error(f"unknown strateg(ies) {', '.join(unknown)}; choose from {STRATEGIES}")
    if not chosen:
        parser.error("--strategies names none")
    # In STRATEGIES' order, whatever the order given.
    args.strategies = [s for s in STRATEGIES if s in chosen]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = (args.tests, SMALL)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="pa_bench_"))
    results: list[Result] = []
    notes: list[str] = []
    try:
        runner = Runner(root, verbose=args.verbose)
        projects: dict[tuple[str, int], Path] = {}
        for strategy in args.strategies:
            for size in sizes:
                path = root / f"{strategy}-{size}"
                write_project(path, strategy, size)
                projects[strategy, size] = path
                # Collect once so that every timed run finds the rewritten test modules
                # compiled, as a developer's second run does.
                sqlite = Backend("sqlite", None)
                runner.run(
                    path,
                    ["--collect-only", *sqlite.args(strategy)],
                    env=sqlite.env(strategy, path),
                )
        for name in args.backends:
            backend = backend_for(name)
            reason = backend.unavailable(args.strategies)
            if reason is not None:
                note = f"{name} skipped: {reason}"
                log(note)
                notes.append(note)
                continue
            if backend.url is not None:
                stale = backend.existing()
                if stale:
                    log(f"{name}: dropping databases left by an earlier run: {stale}")
                    backend.drop(stale)
            try:
                results += bench_backend(
                    runner, backend, projects, sizes, args.repeat, args.strategies
                )
            finally:
                if backend.url is not None:
                    left = backend.existing()
                    if left:
                        note = f"{name}: runs left {', '.join(left)} behind; dropped"
                        log(note)
                        notes.append(note)
                        backend.drop(left)
    except BenchError as exc:
        log(str(exc))
        return 1
    finally:
        if args.keep:
            log(f"projects kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(
        f"{args.tests} and {SMALL} generated tests, {TABLES} tables, median of {args.repeat} "
        f"runs; per test = (t({args.tests}) - t({SMALL})) / {args.tests - SMALL}. "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after.\n"
    )
    if results:
        print(table(results, sizes))
    for note in notes:
        print(f"\n{note}")
    log(f"benchmark took {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
