"""The asyncio front: AsyncSession, AsyncConnection and the application's AsyncEngines and
async_sessionmakers behave as in production inside the test's transaction, share it with
the sync fixtures, and leave nothing behind, under pytest-asyncio and anyio."""

from __future__ import annotations

import pytest

from conftest import Project, output

#: The models of conftest's MODELS, and the application's async objects, made at import
#: from its async URL (set by alchemy_async_url_env).
ASYNC_APP = """
    import asyncio
    import os
    from sqlalchemy.ext.asyncio import (
        async_scoped_session, async_sessionmaker, create_async_engine,
    )
    from models import Base, User, Post

    async_engine = create_async_engine(
        os.environ.get("APP_ASYNC_URL", "sqlite+aiosqlite:///dev.db")
    )
    AsyncSessionLocal = async_sessionmaker(async_engine)
    AsyncScoped = async_scoped_session(
        async_sessionmaker(async_engine), scopefunc=asyncio.current_task
    )
"""

COUNT = "from sqlalchemy import func, select; COUNT = select(func.count()).select_from(User)"


def run_clean(project: Project, *args: str, **outcomes: int) -> pytest.RunResult:
    """Run with the test database kept; the outcomes as given, no user row left."""
    result = project.run("--alchemy-reuse-db", *args)
    result.assert_outcomes(**outcomes)
    assert project.query("SELECT COUNT(*) FROM users") == [(0,)]
    return result


@pytest.fixture
def async_project(models_project: Project) -> Project:
    """models_project, plus the application's async objects listed and pytest-asyncio's
    auto mode."""
    models_project.write("asyncapp.py", ASYNC_APP)
    models_project.ini(
        alchemy_metadata="models:Base",
        alchemy_engines=["models:engine", "asyncapp:async_engine"],
        alchemy_sessionmakers=[
            "models:SessionLocal",
            "models:ScopedSession",
            "asyncapp:AsyncSessionLocal",
            "asyncapp:AsyncScoped",
        ],
        alchemy_url_env="APP_DATABASE_URL",
        alchemy_async_url_env="APP_ASYNC_URL",
        asyncio_mode="auto",
    )
    return models_project


def test_async_session_commit_rollback_savepoints_and_errors(async_project: Project) -> None:
    async_project.write(
        "test_session.py",
        f"""
        import pytest
        from sqlalchemy.exc import IntegrityError
        from models import User
        {COUNT}

        async def test_commit_then_rollback(async_db_session):
            async_db_session.add(User(email="kept@example.com"))
            await async_db_session.commit()
            async_db_session.add(User(email="dropped@example.com"))
            await async_db_session.flush()
            await async_db_session.rollback()
            assert (await async_db_session.scalars(select(User.email))).all() == [
                "kept@example.com"]

        async def test_savepoints(async_db_session):
            async_db_session.add(User(email="outer@example.com"))
            async with async_db_session.begin_nested():
                async_db_session.add(User(email="inner@example.com"))
            savepoint = await async_db_session.begin_nested()
            async_db_session.add(User(email="undone@example.com"))
            await async_db_session.flush()
            await savepoint.rollback()
            await async_db_session.commit()
            assert await async_db_session.scalar(COUNT) == 2

        async def test_integrity_error_then_continue(async_db_session):
            async_db_session.add(User(email="a@example.com"))
            await async_db_session.commit()
            async_db_session.add(User(email="a@example.com"))
            with pytest.raises(IntegrityError):
                await async_db_session.commit()
            await async_db_session.rollback()
            async_db_session.add(User(email="b@example.com"))
            await async_db_session.commit()
            assert await async_db_session.scalar(COUNT) == 2

        async def test_zz_next_test_starts_empty(async_db_session):
            assert await async_db_session.scalar(COUNT) == 0
        """,
    )
    run_clean(async_project, "-p", "no:randomly", passed=4)


def test_sync_and_async_fixtures_share_one_transaction(async_project: Project) -> None:
    async_project.write(
        "test_shared.py",
        f"""
        from sqlalchemy import text
        from models import User
        {COUNT}

        async def test_both_ways(db_session, async_db_session, async_db_connection):
            db_session.add(User(email="sync@example.com"))
            db_session.commit()
            assert await async_db_session.scalar(COUNT) == 1
            async_db_session.add(User(email="async@example.com"))
            await async_db_session.commit()
            assert db_session.scalar(COUNT) == 2
            await async_db_connection.execute(
                text("INSERT INTO users (email) VALUES ('conn@example.com')"))
            await async_db_connection.commit()
            assert db_session.scalar(COUNT) == 3

        async def test_async_engine_begin(async_db_engine, db_engine):
            async with async_db_engine.begin() as conn:
                await conn.execute(text("INSERT INTO users (email) VALUES ('e@example.com')"))
            with db_engine.connect() as conn:
                assert conn.scalar(COUNT) == 1
        """,
    )
    run_clean(async_project, passed=2)


def test_application_async_engine_and_sessionmakers_are_routed(async_project: Project) -> None:
    async_project.write(
        "test_app.py",
        f"""
        import os
        from sqlalchemy import text
        from sqlalchemy.engine import make_url
        from asyncapp import AsyncScoped, AsyncSessionLocal, async_engine
        from models import User
        {COUNT}

        async def test_app_code_commits(db_session):
            async with AsyncSessionLocal() as session:
                session.add(User(email="maker@example.com"))
                await session.commit()
            AsyncScoped().add(User(email="scoped@example.com"))
            await AsyncScoped().commit()
            async with async_engine.begin() as conn:
                await conn.execute(text("INSERT INTO users (email) VALUES ('e@example.com')"))
            assert db_session.scalar(COUNT) == 3

        async def test_app_rollback_keeps_the_tests_data(async_db_session):
            async_db_session.add(User(email="test@example.com"))
            await async_db_session.commit()
            async with AsyncSessionLocal() as session:
                session.add(User(email="app@example.com"))
                await session.flush()
                await session.rollback()
            assert (await async_db_session.scalars(select(User.email))).all() == [
                "test@example.com"]

        def test_url_env_has_the_async_driver():
            url = make_url(os.environ["APP_ASYNC_URL"])
            assert url.get_driver_name() in ("aiosqlite", "psycopg_async", "aiomysql")
            assert "test_" in (url.database or "")
            assert async_engine.url.database == url.database
        """,
    )
    run_clean(async_project, passed=3)
    assert not (async_project.path / "dev.db").exists()


def test_unlisted_async_engine_is_stopped_before_it_connects(models_project: Project) -> None:
    models_project.write("asyncapp.py", ASYNC_APP)
    models_project.ini(
        alchemy_metadata="models:Base",
        alchemy_async_url_env="APP_ASYNC_URL",
        asyncio_mode="auto",
    )
    models_project.write(
        "test_unlisted.py",
        """
        from sqlalchemy import text
        from asyncapp import async_engine

        async def test_writes(db_session):
            db_session.connection()
            async with async_engine.begin() as conn:
                await conn.execute(text("INSERT INTO users (email) VALUES ('x@example.com')"))
        """,
    )
    result = models_project.run("--alchemy-reuse-db")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*an engine that pytest-alchemy does not route*"])
    result.stdout.fnmatch_lines(["*alchemy_engines = asyncapp:async_engine*"])
    assert models_project.query("SELECT COUNT(*) FROM users") == [(0,)]


@pytest.mark.parametrize(
    ("ini", "marks"),
    [
        ({"asyncio_mode": "strict"}, "@pytest.mark.asyncio(loop_scope='{scope}')"),
        ({"asyncio_mode": "auto", "asyncio_default_test_loop_scope": "module"}, ""),
        ({"asyncio_mode": "strict", "asyncio_default_test_loop_scope": "session"}, ""),
        ({"asyncio_mode": "strict"}, "@pytest.mark.anyio"),
    ],
    ids=["strict-marks", "auto-module", "strict-session-default", "anyio"],
)
def test_any_event_loop_scope(async_project: Project, ini: dict[str, str], marks: str) -> None:
    settings = {
        "alchemy_metadata": "models:Base",
        "alchemy_engines": ["asyncapp:async_engine"],
        "alchemy_sessionmakers": ["asyncapp:AsyncSessionLocal"],
        "alchemy_async_url_env": "APP_ASYNC_URL",
        **ini,
    }
    async_project.ini(**settings)
    if "strict-session" in str(ini) or ini.get("asyncio_default_test_loop_scope"):
        marks = marks or "@pytest.mark.asyncio"
    tests = []
    for scope in ("function", "module", "session"):
        mark = marks.format(scope=scope)
        tests.append(
            f"""
{mark}
async def test_{scope}(async_db_session, db_session):
    async with AsyncSessionLocal() as session:
        session.add(User(email="{scope}@example.com"))
        await session.commit()
    assert await async_db_session.scalar(COUNT) == 1
    assert db_session.scalar(COUNT) == 1
"""
        )
    header = (
        f"import pytest\nfrom asyncapp import AsyncSessionLocal\nfrom models import User\n{COUNT}\n"
    )
    extra = (
        "\n@pytest.fixture\ndef anyio_backend():\n    return 'asyncio'\n"
        if "anyio" in marks
        else ""
    )
    async_project.write("test_loops.py", header + extra + "".join(tests))
    run_clean(async_project, "-p", "no:randomly", passed=3)


def test_async_url_in_alchemy_url_runs_the_sync_side_on_its_sync_driver(
    project: Project,
) -> None:
    if project.backend.url is None:
        url = "sqlite+aiosqlite:///app.db"
    else:
        from sqlalchemy.engine import make_url

        parsed = make_url(project.backend.url)
        driver = "psycopg_async" if parsed.get_backend_name() == "postgresql" else "aiomysql"
        url = parsed.set(drivername=f"{parsed.get_backend_name()}+{driver}").render_as_string(
            hide_password=False
        )
    project.write(
        "test_url.py",
        f"""
        from sqlalchemy import text

        async def test_both(db_engine, async_db_engine, async_db_session):
            assert not db_engine.dialect.is_async
            assert async_db_engine.url.drivername == {url.split(":")[0]!r}
            assert (await async_db_session.execute(text("SELECT 1"))).scalar() == 1
        """,
    )
    project.ini(asyncio_mode="auto")
    result = project.pytester.runpytest("--alchemy-url", url, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_sqlmodel_session_classes(async_project: Project) -> None:
    async_project.write(
        "conftest.py",
        """
        import pytest
        from sqlmodel.ext.asyncio.session import AsyncSession

        @pytest.fixture(scope="session")
        def alchemy_session_options():
            return {"class_": AsyncSession}
        """,
    )
    async_project.write(
        "test_sqlmodel.py",
        """
        import sqlmodel
        from sqlmodel import select
        from sqlmodel.ext.asyncio.session import AsyncSession
        from models import User

        async def test_exec(async_db_session, db_session):
            assert isinstance(async_db_session, AsyncSession)
            assert isinstance(db_session, sqlmodel.Session)
            async_db_session.add(User(email="m@example.com"))
            await async_db_session.commit()
            assert (await async_db_session.exec(select(User.email))).all() == ["m@example.com"]
            assert db_session.exec(select(User.email)).all() == ["m@example.com"]
        """,
    )
    run_clean(async_project, passed=1)


def test_cancelled_and_failing_tests_still_roll_back(async_project: Project) -> None:
    async_project.write(
        "test_cancel.py",
        f"""
        import asyncio
        import pytest
        from models import User
        {COUNT}

        async def test_1_cancelled(async_db_session):
            async_db_session.add(User(email="c@example.com"))
            await async_db_session.commit()
            raise asyncio.CancelledError()

        async def test_2_fails(async_db_session):
            async_db_session.add(User(email="f@example.com"))
            await async_db_session.commit()
            raise RuntimeError("boom")

        async def test_3_times_out(async_db_session):
            async_db_session.add(User(email="t@example.com"))
            await async_db_session.flush()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.sleep(5), 0.01)

        async def test_4_empty(async_db_session):
            assert await async_db_session.scalar(COUNT) == 0
        """,
    )
    run_clean(async_project, "-p", "no:randomly", passed=2, failed=2)


def test_a_task_that_outlives_its_test_cannot_write_into_the_next(
    async_project: Project,
) -> None:
    async_project.write(
        "test_task.py",
        f"""
        import asyncio
        import pytest
        from asyncapp import AsyncSessionLocal
        from models import User
        {COUNT}

        errors = []

        async def later():
            await asyncio.sleep(0.2)
            try:
                async with AsyncSessionLocal() as session:
                    session.add(User(email="late@example.com"))
                    await session.commit()
            except Exception as exc:
                errors.append(exc)

        @pytest.mark.asyncio(loop_scope="module")
        async def test_1_leaves_a_task(async_db_session):
            async_db_session.add(User(email="a@example.com"))
            await async_db_session.commit()
            test_1_leaves_a_task.task = asyncio.create_task(later())

        @pytest.mark.asyncio(loop_scope="module")
        async def test_2_is_not_written_into(async_db_session):
            await test_1_leaves_a_task.task
            assert await async_db_session.scalar(COUNT) == 0
            assert len(errors) == 1, errors
            assert "started during" in str(errors[0]), errors[0]
        """,
    )
    async_project.ini(
        alchemy_metadata="models:Base",
        alchemy_sessionmakers=["asyncapp:AsyncSessionLocal"],
        alchemy_async_url_env="APP_ASYNC_URL",
        asyncio_mode="strict",
    )
    result = async_project.run("-p", "no:randomly", "--alchemy-reuse-db")
    # The second test is told, even when nobody awaits the task.
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*IsolationError: pytest-alchemy: a task * started during*"])
    assert async_project.query("SELECT COUNT(*) FROM users") == [(0,)]


#: A FastAPI application on the async objects: routes that commit, a unique constraint
#: handled by rollback, a background task with its own session, a lifespan that reads.
FASTAPI_APP = """
    from contextlib import asynccontextmanager
    from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException
    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError
    from asyncapp import AsyncSessionLocal
    from models import User

    started = {}

    @asynccontextmanager
    async def lifespan(app):
        async with AsyncSessionLocal() as session:
            started["users"] = await session.scalar(select(func.count()).select_from(User))
        yield

    app = FastAPI(lifespan=lifespan)

    async def get_session():
        async with AsyncSessionLocal() as session:
            yield session

    async def audit(email):
        async with AsyncSessionLocal() as session:
            session.add(User(email="audit-" + email))
            await session.commit()

    @app.post("/users/{email}")
    async def create(email: str, tasks: BackgroundTasks, session=Depends(get_session)):
        session.add(User(email=email))
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            raise HTTPException(409)
        tasks.add_task(audit, email)
        return {"created": email}

    @app.get("/users")
    async def users(session=Depends(get_session)):
        return sorted((await session.scalars(select(User.email))).all())
"""


def test_fastapi_with_both_clients_the_lifespan_and_background_tasks(
    async_project: Project,
) -> None:
    async_project.write("webapp.py", FASTAPI_APP)
    async_project.write(
        "test_web.py",
        f"""
        import httpx
        from fastapi.testclient import TestClient
        from models import User
        from webapp import app, get_session, started
        {COUNT}

        async def test_async_client(async_db_session):
            async_db_session.add(User(email="pre@example.com"))
            await async_db_session.commit()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.post("/users/x")).status_code == 200
                assert (await client.post("/users/x")).status_code == 409
                assert (await client.get("/users")).json() == [
                    "audit-x", "pre@example.com", "x"]
            assert await async_db_session.scalar(COUNT) == 3

        def test_sync_client_and_lifespan(db_session):
            db_session.add(User(email="pre@example.com"))
            db_session.commit()
            with TestClient(app) as client:
                assert started["users"] == 1
                assert client.post("/users/y").status_code == 200
                assert client.post("/users/y").status_code == 409
                assert client.get("/users").json() == ["audit-y", "pre@example.com", "y"]
            assert db_session.scalar(COUNT) == 3

        async def test_dependency_override_with_the_tests_session(async_db_session):
            app.dependency_overrides[get_session] = lambda: async_db_session
            try:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    assert (await c.post("/users/z")).status_code == 200
                    assert (await c.post("/users/z")).status_code == 409
                    assert (await c.get("/users")).json() == ["audit-z", "z"]
            finally:
                app.dependency_overrides.clear()
            assert await async_db_session.scalar(COUNT) == 2
        """,
    )
    run_clean(async_project, passed=3)


def test_async_fixtures_under_xdist(async_project: Project) -> None:
    async_project.write(
        "test_many.py",
        f"""
        import pytest
        from models import User
        {COUNT}

        @pytest.mark.parametrize("n", range(6))
        async def test_commit(async_db_session, n):
            assert await async_db_session.scalar(COUNT) == 0
            async_db_session.add(User(email=f"{{n}}@example.com"))
            await async_db_session.commit()
            assert await async_db_session.scalar(COUNT) == 1
        """,
    )
    result = async_project.run_subprocess("-n", "2")
    result.assert_outcomes(passed=6)
    assert async_project.databases() == set()


@pytest.mark.backends("postgresql")
def test_asyncpg_through_its_emulation_over_the_shared_connection(
    async_project: Project,
) -> None:
    # alchemy_url names asyncpg: the test database is reached with psycopg, and every
    # async engine (the app's, async_db_engine) speaks asyncpg's API over it.
    assert async_project.backend.url is not None
    url = async_project.backend.url.replace("postgresql+psycopg://", "postgresql+asyncpg://")
    async_project.write("webapp.py", FASTAPI_APP)
    async_project.write(
        "test_asyncpg.py",
        f"""
        import os
        import httpx
        import pytest
        from sqlalchemy.exc import IntegrityError
        from asyncapp import async_engine
        from models import User
        from webapp import app
        {COUNT}

        async def test_drivers(async_db_engine, db_engine):
            assert async_engine.dialect.driver == "asyncpg"
            assert async_db_engine.dialect.driver == "asyncpg"
            assert db_engine.dialect.driver == "psycopg"
            assert os.environ["APP_ASYNC_URL"].startswith("postgresql+asyncpg://")

        async def test_session_and_routes(async_db_session, db_session):
            async_db_session.add(User(email="a@example.com"))
            await async_db_session.commit()
            async_db_session.add(User(email="a@example.com"))
            with pytest.raises(IntegrityError):
                await async_db_session.commit()
            await async_db_session.rollback()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.post("/users/x")).status_code == 200
                assert (await client.post("/users/x")).status_code == 409
            assert db_session.scalar(COUNT) == 3
        """,
    )
    result = async_project.pytester.runpytest(
        "--alchemy-url", url, "-p", "no:cacheprovider", "--alchemy-reuse-db"
    )
    result.assert_outcomes(passed=2)
    assert async_project.query("SELECT COUNT(*) FROM users") == [(0,)]


@pytest.mark.backends("postgresql", "mariadb")
def test_app_async_engine_on_another_kind_of_database_is_refused(models_project: Project) -> None:
    # The app's development default is sqlite+aiosqlite; the run is on a server.
    models_project.write("asyncapp.py", ASYNC_APP)
    models_project.ini(
        alchemy_metadata="models:Base",
        alchemy_engines="asyncapp:async_engine",
        asyncio_mode="auto",
    )
    models_project.write("test_db.py", "async def test_one(async_db_session):\n    pass\n")
    result = models_project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = output(result)
    assert "alchemy_engines entry 'asyncapp:async_engine' is a sqlite engine" in text, text
    assert "environment variable named in alchemy_async_url_env" in text, text
    assert "Traceback" not in text, text
    assert not (models_project.path / "dev.db").exists()


USERS_REVISION = """
    import sqlalchemy as sa
    from alembic import op

    revision = "0001"
    down_revision = None
    branch_labels = None
    depends_on = None


    def upgrade():
        op.create_table(
            "users",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("email", sa.String(100), unique=True),
        )
"""


def test_alembic_async_template_unchanged_even_when_first_used_inside_a_loop(
    async_project: Project,
) -> None:
    from alembic import command
    from alembic.config import Config

    path = async_project.path
    command.init(Config(str(path / "alembic.ini")), str(path / "migrations"), template="async")
    assert "async_engine_from_config" in (path / "migrations" / "env.py").read_text()
    async_project.write("migrations/versions/0001_users.py", USERS_REVISION)
    async_project.ini(
        alchemy_alembic_ini="alembic.ini",
        alchemy_engines=["asyncapp:async_engine"],
        alchemy_async_url_env="APP_ASYNC_URL",
        asyncio_mode="auto",
    )
    async_project.write(
        "test_first_use.py",
        f"""
        from sqlalchemy import text
        from asyncapp import async_engine
        from models import User
        {COUNT}

        async def test_1_the_apps_engine_builds_the_database():
            async with async_engine.begin() as conn:
                await conn.execute(text("INSERT INTO users (email) VALUES ('a@example.com')"))
                assert (await conn.execute(COUNT)).scalar() == 1

        async def test_2_empty(async_db_session):
            assert await async_db_session.scalar(COUNT) == 0
        """,
    )
    run_clean(async_project, "-p", "no:randomly", passed=2)
    assert async_project.query("SELECT version_num FROM alembic_version") == [("0001",)]


def test_bulk_update_by_primary_key_counts_rows_on_both_fronts(async_project: Project) -> None:
    # ORM bulk UPDATE runs executemany and checks the row count it returns (PyMySQL's
    # and aiomysql's executemany return it).
    async_project.write(
        "test_bulk.py",
        """
        from sqlalchemy import select, update
        from models import User

        async def test_async(async_db_session):
            async_db_session.add_all([User(id=1, email="a"), User(id=2, email="b")])
            await async_db_session.commit()
            await async_db_session.execute(
                update(User), [{"id": 1, "email": "x"}, {"id": 2, "email": "y"}])
            await async_db_session.commit()
            assert (await async_db_session.scalars(select(User.email).order_by(User.id))).all() == [
                "x", "y"]

        def test_sync(db_session):
            db_session.add_all([User(id=1, email="a"), User(id=2, email="b")])
            db_session.commit()
            db_session.execute(update(User), [{"id": 1, "email": "x"}, {"id": 2, "email": "y"}])
            db_session.commit()
            assert db_session.scalars(select(User.email).order_by(User.id)).all() == ["x", "y"]
        """,
    )
    async_project.run().assert_outcomes(passed=2)


def test_an_application_exception_is_never_replaced_by_a_refused_rollback(
    async_project: Project,
) -> None:
    async_project.write(
        "test_refused.py",
        """
        import asyncio
        import pytest
        from asyncapp import AsyncSessionLocal
        from models import User

        async def test_exception_goes_on():
            with pytest.raises(ValueError, match="app error"):
                async with AsyncSessionLocal.begin() as outer:
                    outer.add(User(email="a@example.com"))
                    await outer.flush()
                    async with AsyncSessionLocal.begin() as inner:
                        inner.add(User(email="b@example.com"))
                    raise ValueError("app error")

        async def test_swallowed_by_gather():
            async def writer(email, fail):
                async with AsyncSessionLocal.begin() as session:
                    session.add(User(email=email))
                    await session.flush()
                    await asyncio.sleep(0.01 if fail else 0)
                    if fail:
                        raise ValueError("app error")

            results = await asyncio.gather(
                writer("a@example.com", True), writer("b@example.com", False),
                return_exceptions=True)
            assert isinstance(results[0], ValueError)
        """,
    )
    result = async_project.run("-p", "no:randomly")
    result.assert_outcomes(failed=2)
    text = output(result)
    assert text.count("was refused") >= 2, text
    assert "DID NOT RAISE" not in text, text


def test_raw_driver_connection_joins_the_test(async_project: Project) -> None:
    async_project.write(
        "test_raw.py",
        f"""
        from models import User
        {COUNT}

        async def test_driver_connection(async_db_connection, db_session):
            raw = await async_db_connection.get_raw_connection()
            driver = raw.driver_connection
            cursor = driver.cursor()
            await cursor.execute("INSERT INTO users (email) VALUES ('raw@example.com')")
            await driver.commit()
            assert db_session.scalar(COUNT) == 1
            await driver.rollback()  # nothing open: nothing undone
            assert db_session.scalar(COUNT) == 1
            if hasattr(type(driver), "set_autocommit") or "aiosqlite" in str(raw):
                shortcut = await driver.execute("SELECT COUNT(*) FROM users")
                assert (await shortcut.fetchone())[0] == 1
        """,
    )
    run_clean(async_project, passed=1)


def test_sqlmodel_metadata_gives_sqlmodel_sessions_without_a_conftest(project: Project) -> None:
    project.write(
        "shop.py",
        """
        from sqlmodel import Field, SQLModel

        class Product(SQLModel, table=True):
            id: int | None = Field(default=None, primary_key=True)
            name: str
        """,
    )
    project.ini(alchemy_metadata="shop:SQLModel", asyncio_mode="auto")
    project.write(
        "test_shop.py",
        """
        import sqlmodel
        from sqlmodel import select
        from sqlmodel.ext.asyncio.session import AsyncSession
        from shop import Product

        async def test_exec(db_session, async_db_session):
            assert isinstance(db_session, sqlmodel.Session)
            assert isinstance(async_db_session, AsyncSession)
            async_db_session.add(Product(name="tea"))
            await async_db_session.commit()
            assert db_session.exec(select(Product.name)).all() == ["tea"]
            assert (await async_db_session.exec(select(Product.name))).all() == ["tea"]
        """,
    )
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert project.query("SELECT COUNT(*) FROM product") == [(0,)]
