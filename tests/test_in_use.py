"""A run never attaches to a test database another run is using (issue 6, item 11):
each run claims its test database's name for its whole life (PostgreSQL advisory lock,
MariaDB GET_LOCK, SQLite lock file) and takes the next free name when another run holds
it; a database with other connections open (a run of an older version) is left alone."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from conftest import Project, output, summary
from pytest_alchemy._settings import sqlite_dir
from pytest_alchemy.provision import Provisioner, provisioner_for

CHECK_NAME = """
    from pathlib import Path

    from sqlalchemy import text

    def current_database(session):
        dialect = session.get_bind().dialect.name
        if dialect == "sqlite":
            return Path(session.execute(text("PRAGMA database_list")).first()[2]).stem
        sql = "SELECT current_database()" if dialect == "postgresql" else "SELECT DATABASE()"
        return session.execute(text(sql)).scalar()

    def test_db(db_session):
        assert current_database(db_session) == {expected!r}
        assert db_session.execute(text("SELECT count(*) FROM users")).scalar() == 0
"""


@pytest.fixture
def claims(project: Project) -> Iterator[Provisioner]:
    """A provisioner of this test's own, to claim names by hand as another run would."""
    url = make_url(project.backend.url or "sqlite://")
    provisioner = provisioner_for(url, source="test", sqlite_dir=sqlite_dir(project.path))
    try:
        yield provisioner
    finally:
        provisioner.close()


@pytest.mark.parametrize("reuse", [False, True], ids=["plain", "reuse"])
def test_claimed_database_is_left_alone_and_another_name_taken(
    models_project: Project, claims: Provisioner, reuse: bool
) -> None:
    project = models_project
    first, second = project.test_db_name(), project.test_db_name("_2")
    project.write("test_a.py", CHECK_NAME.format(expected=first))
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    project.execute("INSERT INTO users (id, email) VALUES (7, 'first@run')")

    assert claims.claim(first)  # another run is using it
    options = ("--alchemy-reuse-db",) if reuse else ()
    project.replace_tests("test_b.py", CHECK_NAME.format(expected=second))
    result = project.run(*options)
    result.assert_outcomes(passed=1)
    assert summary(result).endswith(f" created ({first!r} is in use by another run)")
    assert second in summary(result)
    # The first run's database: untouched, its row still there.
    assert project.query("SELECT id, email FROM users", first) == [(7, "first@run")]
    # A stand-in name is never kept, even with --alchemy-reuse-db.
    assert project.databases() == {first}

    claims.release(first)
    project.replace_tests("test_c.py", CHECK_NAME.format(expected=first).replace("== 0", "== 1"))
    result = project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=1)
    assert summary(result).endswith(" reused")


def test_every_name_claimed_is_a_clear_error(models_project: Project, claims: Provisioner) -> None:
    project = models_project
    names = [project.test_db_name()] + [project.test_db_name(f"_{n}") for n in range(2, 10)]
    for name in names:
        assert claims.claim(name)
    project.write("test_a.py", "def test_db(db_session):\n    pass\n")
    result = project.run()
    text = output(result)
    assert result.ret != 0
    assert "are all in use by other pytest runs" in text
    assert "Traceback" not in text
    assert project.databases() == set()


HOLDER = """
    import time
    from pathlib import Path

    from sqlalchemy import text

    def test_holds_the_database(db_session):
        db_session.execute(text("INSERT INTO users (id, email) VALUES (1, 'held')"))
        db_session.flush()
        Path("started").write_text("yes")
        for _ in range(1200):
            if Path("go").exists():
                break
            time.sleep(0.05)
        assert db_session.execute(text("SELECT email FROM users")).scalars().all() == ["held"]
"""


@pytest.mark.parametrize("reuse", [False, True], ids=["plain", "reuse"])
def test_two_concurrent_runs(models_project: Project, reuse: bool) -> None:
    project = models_project
    first, second = project.test_db_name(), project.test_db_name("_2")
    project.write("test_hold.py", HOLDER)
    project.write("test_other.py", CHECK_NAME.format(expected=second))
    args = [*project.backend.args(), "-p", "no:cacheprovider", "-p", "no:randomly"]
    holder = project.pytester.popen(
        [sys.executable, "-m", "pytest", *args, "test_hold.py"],
        stdin=None,
    )
    try:
        for _ in range(600):
            if (project.path / "started").exists() or holder.poll() is not None:
                break
            time.sleep(0.05)
        assert (project.path / "started").exists(), holder.communicate()
        options = ("--alchemy-reuse-db",) if reuse else ()
        result = project.run(*options, "test_other.py")
        result.assert_outcomes(passed=1)
        assert summary(result).endswith(f" created ({first!r} is in use by another run)")
    finally:
        (project.path / "go").write_text("go")
        out, err = holder.communicate(timeout=120)
    assert holder.returncode == 0, (out.decode(), err.decode())
    assert b"1 passed" in out
    assert project.databases() == set()


@pytest.mark.backends("postgresql", "mariadb")
def test_reuse_refuses_a_database_with_other_connections(models_project: Project) -> None:
    """A run of an older version takes no claim: its open connections still tell."""
    project = models_project
    project.write("test_a.py", "def test_db(db_session):\n    pass\n")
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    engine = create_engine(project.backend.test_db_url(project.path), poolclass=NullPool)
    try:
        with engine.connect():
            result = project.run("--alchemy-reuse-db")
    finally:
        engine.dispose()
    text = output(result)
    assert "is in use by 1 other connection(s)" in text, text
    assert project.databases() == {project.test_db_name()}


LAZY_SETTINGS = """
    import os

    DATABASE_URL = os.environ["APP_DATABASE_URL"]  # read once, at import
"""

LAZY_WRITER = """
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    import settings

    def test_lazy_engine(db_session):
        db_session.execute(text("SELECT 1"))
        # An engine the application makes later, from the URL it read at import (the
        # primary name): not routed, so it must be refused, not reach the other run's
        # database under that name.
        engine = create_engine(settings.DATABASE_URL, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO users (id, email) VALUES (999, 'escaped')"))
        finally:
            engine.dispose()
"""


def test_an_engine_made_from_the_primary_name_cannot_reach_the_other_runs_database(
    models_project: Project, claims: Provisioner
) -> None:
    project = models_project
    first = project.test_db_name()
    project.ini(alchemy_metadata="models:Base", alchemy_url_env="APP_DATABASE_URL")
    project.write("settings.py", LAZY_SETTINGS)
    project.write("test_a.py", "def test_db(db_session):\n    pass\n")
    project.run("--alchemy-reuse-db").assert_outcomes(passed=1)

    assert claims.claim(first)  # another run is using it
    project.replace_tests("test_b.py", LAZY_WRITER)
    result = project.run()
    result.assert_outcomes(failed=1)
    assert "IsolationError" in output(result)
    assert project.query("SELECT id FROM users", first) == []
    assert project.databases() == {first}


KILLED = """
    import os
    import signal

    from sqlalchemy import text

    def test_killed(db_session):
        db_session.execute(text("SELECT 1"))
        os.kill(os.getpid(), signal.SIGKILL)  # no teardown: the stand-in stays
"""


def claim_soon(claims: Provisioner, name: str, seconds: float = 10.0) -> bool:
    """Claim ``name``, trying again for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while not claims.claim(name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_stand_ins_left_by_killed_runs_are_dropped(
    models_project: Project, claims: Provisioner
) -> None:
    """A run killed while on a stand-in name leaves that database behind; the next run
    that gets the primary name drops it, but not one that another run holds."""
    project = models_project
    first, second, third = (project.test_db_name(s) for s in ("", "_2", "_3"))
    project.write("test_killed.py", KILLED)
    project.write("test_a.py", "def test_db(db_session):\n    pass\n")
    assert claims.claim(first)
    project.run_subprocess("test_killed.py")  # killed on _2
    assert project.databases() == {second}
    # A run while the primary name is still held takes _2 again, and says what it was.
    result = project.run("test_a.py")
    assert summary(result).endswith(
        f" rebuilt (left by a run that was killed) ({first!r} is in use by another run)"
    )
    assert project.databases() == set()

    project.run_subprocess("test_killed.py")  # killed on _2
    # The server lets a killed client's claim go when it sees the socket closed: soon,
    # not at once on a busy machine.
    assert claim_soon(claims, second)
    project.run_subprocess("test_killed.py")  # killed on _3
    assert project.databases() == {second, third}

    claims.release(first)  # _2 stays held by "another run"
    project.run("test_a.py").assert_outcomes(passed=1)
    assert project.databases() == {second}
