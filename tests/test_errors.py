"""Bad input stops the run with a short message that names the setting, the value and a
fix: no traceback from inside SQLAlchemy, no password echoed, never a hang, and nothing
left (or made) on the server."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from conftest import MODELS, Backend, Project, output

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR

#: Lines of pytest's own frame around a run: what is left is the plugin's error block.
_FRAME = re.compile(
    r"""^(
        \s*
      | =+ .* =+                                  # section rules
      | platform\ .*
      | (rootdir|configfile|plugins|cachedir|alchemy):\ .*
      | collect(ed|ing)\b.*
      | \S+\.py\ ?[.sxXEF]*\s*(\[\s*\d+%\])?      # progress line of a test file
    )$""",
    re.VERBOSE,
)

#: The inner project's test: anything that needs the test database.
NEEDS_DB = """
    def test_one(db_session):
        pass

    def test_two(db_session):
        pass
"""


def error_block(result: pytest.RunResult) -> list[str]:
    return [line for line in output(result).splitlines() if not _FRAME.match(line)]


def assert_short_message(result: pytest.RunResult, *fragments: str) -> str:
    """The run stopped with one short plugin message holding every fragment and a fix,
    and no traceback. Returns the whole output."""
    text = output(result)
    assert "Traceback" not in text, text
    assert "site-packages/sqlalchemy" not in text, text
    assert "sqlalchemy/engine/" not in text, text
    block = error_block(result)
    assert 0 < len(block) < 12, "\n".join(block)
    message = "\n".join(block)
    assert message.count("pytest-alchemy:") == 1, message
    assert "Fix:" in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    return text


def run_without_url(project: Project, *args: str) -> pytest.RunResult:
    """Run in-process without the backend's --alchemy-url (the URL comes from elsewhere)."""
    return project.pytester.runpytest("-p", "no:cacheprovider", *args)


class DatabasesAtSessionFinish:
    """A plugin for the inner run: which test databases exist when the session ends,
    before the plugin's session fixtures are torn down (what the run made, even if it
    dropped it again)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.seen: set[str] | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        self.seen = self.project.databases()


def run_probed(project: Project, *args: str) -> tuple[pytest.RunResult, DatabasesAtSessionFinish]:
    probe = DatabasesAtSessionFinish(project)
    result = project.pytester.runpytest(
        *project.backend.args(), "-p", "no:cacheprovider", *args, plugins=[probe]
    )
    return result, probe


def server_url(backend: Backend, **changes: object) -> str:
    """The backend's URL (with this test's base database) with some parts changed."""
    assert backend.url is not None
    return make_url(backend.url).set(**changes).render_as_string(hide_password=False)


def secret() -> str:
    return f"s3cret{uuid.uuid4().hex[:12]}"


# -- 1. malformed URLs ------------------------------------------------------------------


def typo_url(backend: Backend) -> str:
    """A URL of the backend's own form with a typical mistake in it."""
    if backend.url is None:
        return "sqlite:/app.db"  # one slash too few
    parsed = make_url(backend.url)
    return f"{parsed.drivername}://{parsed.username}@{parsed.host}:{parsed.port}x/{backend.base}"


SOURCES = {
    "cli": "--alchemy-url",
    "env": "the environment variable PYTEST_ALCHEMY_URL",
    "ini": "alchemy_url in pytest.ini",
}


def run_with_url(
    project: Project, monkeypatch: pytest.MonkeyPatch, source: str, url: str, *args: str
) -> pytest.RunResult:
    """Run with ``url`` given on the command line, in the environment, or in the ini."""
    if source == "cli":
        project.ini()
        return project.run("--alchemy-url", url, *args)
    if source == "env":
        project.ini()
        monkeypatch.setenv("PYTEST_ALCHEMY_URL", url)
    else:
        project.ini(alchemy_url=url)
    return run_without_url(project, *args)


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("kind", ["not a url", "typo"])
def test_malformed_url(
    project: Project, monkeypatch: pytest.MonkeyPatch, source: str, kind: str
) -> None:
    url = "not a url" if kind == "not a url" else typo_url(project.backend)
    project.write("test_db.py", NEEDS_DB)
    result = run_with_url(project, monkeypatch, source, url)
    assert result.ret == USAGE_ERROR
    assert_short_message(
        result,
        f"{SOURCES[source]} is not a valid database URL",
        repr(url),
        "Fix: use the form dialect+driver://user:password@host:port/database",
    )
    assert project.databases() == set()


def malformed_with_password(backend: Backend, form: str, password: str) -> str:
    if backend.url is None:  # SQLCipher URLs carry the passphrase as the password
        driver, user, host = "sqlite+pysqlcipher", "", ""
    else:
        parsed = make_url(backend.url)
        driver, user, host = parsed.drivername, parsed.username or "", parsed.host or ""
    return {
        "bad port": f"{driver}://{user}:{password}@{host}:port/{backend.base}",
        "one slash": f"{driver}:/{user}:{password}@{host}/{backend.base}",
        "no scheme": f"{user or 'app'}:{password}@{host or '127.0.0.1'}/{backend.base}",
    }[form]


@pytest.mark.parametrize("form", ["bad port", "one slash", "no scheme"])
def test_malformed_url_never_shows_the_password(project: Project, form: str) -> None:
    # Every source goes through the same parsing (test_malformed_url): one is enough here.
    password = secret()
    url = malformed_with_password(project.backend, form, password)
    project.ini()
    project.write("test_db.py", NEEDS_DB)
    result = project.run("--alchemy-url", url)
    assert result.ret == USAGE_ERROR
    text = assert_short_message(result, "--alchemy-url is not a valid database URL")
    assert password not in text
    assert project.databases() == set()


# -- 2. unknown backend or driver -------------------------------------------------------------


def test_unknown_backend(project: Project) -> None:
    project.ini()
    project.write("test_db.py", NEEDS_DB)
    result = project.run("--alchemy-url", "oracle+cx_oracle://scott@127.0.0.1/app")
    assert result.ret == USAGE_ERROR
    assert_short_message(
        result,
        "--alchemy-url names the backend 'oracle'",
        "Fix: use one of mariadb, mysql, postgresql, sqlite.",
    )
    assert project.databases() == set()


SUGGESTED = {
    "sqlite": "sqlite://",
    "postgresql": "postgresql+psycopg:// with pip install 'pytest-alchemy[postgresql]'",
    "mariadb": "mysql+pymysql:// with pip install 'pytest-alchemy[mysql]'",
}


def test_unknown_driver(project: Project) -> None:
    backend = project.backend
    if backend.url is None:
        url, drivername = "sqlite+nosuchdriver:///app.db", "sqlite+nosuchdriver"
    else:
        drivername = f"{make_url(backend.url).get_backend_name()}+nosuchdriver"
        url = server_url(backend, drivername=drivername)
    project.ini()
    project.write("test_db.py", NEEDS_DB)
    result = project.run("--alchemy-url", url)
    assert result.ret == USAGE_ERROR
    assert_short_message(
        result,
        f"--alchemy-url names the driver {drivername!r}, which SQLAlchemy does not know",
        f"Fix: use a driver SQLAlchemy supports, for example {SUGGESTED[backend.name]}.",
    )
    assert project.databases() == set()


# -- 3. driver not installed --------------------------------------------------------------


DRIVER_MODULE = {"postgresql": "psycopg", "mariadb": "pymysql"}
EXTRA = {"postgresql": "postgresql", "mariadb": "mysql"}


@pytest.mark.backends("postgresql", "mariadb")
def test_missing_driver_names_the_pip_extra(project: Project) -> None:
    module = DRIVER_MODULE[project.backend.name]
    project.ini()
    project.write("hide_driver.py", f"import sys\nsys.modules[{module!r}] = None\n")
    project.write("test_db.py", NEEDS_DB)
    result = project.run_subprocess("-p", "hide_driver")
    assert result.ret == USAGE_ERROR
    driver = make_url(project.backend.url or "").get_driver_name()
    assert_short_message(
        result,
        f"the driver {driver!r} for --alchemy-url",
        "is not installed",
        f"Fix: pip install 'pytest-alchemy[{EXTRA[project.backend.name]}]'.",
    )
    assert project.databases() == set()


#: A driver that no extra installs (and that is not installed): the URL's driver name,
#: the module that is missing, and the pip distribution that provides it.
OTHER_DRIVER = {
    "sqlite": (
        "pysqlcipher",
        r"'(sqlcipher3|pysqlcipher3)'",
        r"pip install (sqlcipher3|pysqlcipher3)",
    ),
    "postgresql": ("pg8000", r"'pg8000'", r"pip install pg8000"),
    "mariadb": ("mysqldb", r"'MySQLdb'", r"pip install mysqlclient"),
}


def test_driver_outside_the_extras_names_what_to_install(project: Project) -> None:
    backend = project.backend
    driver, module, install = OTHER_DRIVER[backend.name]
    password = secret()
    if backend.url is None:
        url = f"sqlite+{driver}://:{password}@/app.db"
    else:
        drivername = f"{make_url(backend.url).get_backend_name()}+{driver}"
        url = server_url(backend, drivername=drivername, password=password)
    project.ini()
    project.write("test_db.py", NEEDS_DB)
    result = project.run("--alchemy-url", url)
    assert result.ret == USAGE_ERROR
    text = assert_short_message(
        result, f"the driver {driver!r} for --alchemy-url", "is not installed"
    )
    message = "\n".join(error_block(result))
    assert re.search(rf"No module named {module}", message), message
    assert re.search(rf"Fix: {install}\b", message), message
    assert password not in text
    assert project.databases() == set()


# -- 4. a server that does not answer -------------------------------------------------------


@pytest.mark.backends("postgresql", "mariadb")
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_server_that_does_not_answer(
    project: Project, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    # Port 1 on the loopback: nothing listens there. No traffic leaves this machine.
    url = server_url(project.backend, host="127.0.0.1", port=1)
    project.write("test_db.py", NEEDS_DB)
    args: tuple[str, ...] = ("-p", "no:cacheprovider")
    if source == "cli":
        project.ini()
        args += ("--alchemy-url", url)
    elif source == "env":
        project.ini()
        monkeypatch.setenv("PYTEST_ALCHEMY_URL", url)
    else:
        project.ini(alchemy_url=url)
    start = time.monotonic()
    result = project.pytester.runpytest_subprocess(*args, timeout=60)
    elapsed = time.monotonic() - start
    assert elapsed < 15, f"the run took {elapsed:.1f}s"
    assert result.ret not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    text = assert_short_message(
        result,
        "the database server at 127.0.0.1:1 does not answer",
        f"({SOURCES[source]} = ",
        "Connection refused",
        "Fix: start the server",
    )
    assert text.count("does not answer") == 1  # stopped once, not once per test
    assert project.databases() == set()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.mark.backends("postgresql", "mariadb")
def test_server_that_accepts_but_never_answers(project: Project, silent_server: int) -> None:
    url = server_url(project.backend, host="127.0.0.1", port=silent_server)
    project.write("test_db.py", NEEDS_DB)
    project.ini()
    start = time.monotonic()
    result = project.pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--alchemy-url", url, timeout=60
    )
    elapsed = time.monotonic() - start
    assert elapsed < 15, f"the run took {elapsed:.1f}s"
    assert result.ret not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    assert_short_message(
        result,
        f"the database server at 127.0.0.1:{silent_server} does not answer",
        "(--alchemy-url = ",
        "Fix: start the server",
    )


# -- 5. authentication -------------------------------------------------------------------


@pytest.mark.backends("mariadb")
def test_wrong_password(project: Project) -> None:
    password = f"wrongpassword{uuid.uuid4().hex[:8]}"
    user = make_url(project.backend.url or "").username
    project.ini()
    project.write("test_db.py", NEEDS_DB)
    result = project.run("--alchemy-url", server_url(project.backend, password=password))
    assert result.ret not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    text = assert_short_message(
        result,
        f"authentication failed for user {user!r} at 127.0.0.1:3306",
        "(--alchemy-url = ",
        "Fix: correct the user name and password in --alchemy-url.",
    )
    assert password not in text
    assert project.databases() == set()


@pytest.mark.backends("postgresql", "mariadb")
def test_unknown_user(project: Project) -> None:
    user = f"nosuchrole_{uuid.uuid4().hex[:12]}"
    password = secret()
    project.ini()
    project.write("test_db.py", NEEDS_DB)
    url = server_url(project.backend, username=user, password=password)
    result = project.run("--alchemy-url", url)
    assert result.ret not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    text = assert_short_message(
        result,
        f"authentication failed for user {user!r}",
        "(--alchemy-url = ",
        "Fix: correct the user name and password in --alchemy-url.",
    )
    assert password not in text
    assert project.databases() == set()


# -- 6. no privilege to create a database ------------------------------------------------


@pytest.fixture
def unprivileged_user(project: Project) -> Iterator[tuple[str, str]]:
    """A login (user, password) on the backend's server that may not create databases."""
    backend = project.backend
    engine = backend.admin_engine()
    password = secret()
    if backend.name == "postgresql":
        user = f"pa_nocreate_{uuid.uuid4().hex[:12]}"
        create = [f"CREATE ROLE \"{user}\" LOGIN NOCREATEDB PASSWORD '{password}'"]
        drop = [f'DROP ROLE IF EXISTS "{user}"']
    else:
        user = f"pa_nc_{uuid.uuid4().hex[:12]}"
        hosts = ("127.0.0.1", "localhost")
        create = [f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'" for host in hosts]
        drop = [f"DROP USER IF EXISTS '{user}'@'{host}'" for host in hosts]
    try:
        with engine.connect() as conn:
            for sql in create:
                conn.exec_driver_sql(sql)
        yield user, password
    finally:
        try:
            with engine.connect() as conn:
                for sql in drop:
                    conn.exec_driver_sql(sql)
        finally:
            engine.dispose()


@pytest.mark.backends("postgresql", "mariadb")
def test_no_privilege_to_create_a_database(
    project: Project, unprivileged_user: tuple[str, str]
) -> None:
    user, password = unprivileged_user
    project.ini()
    project.write("test_db.py", NEEDS_DB)
    url = server_url(project.backend, username=user, password=password)
    result = project.run("--alchemy-url", url)
    assert result.ret not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    reason = "permission denied" if project.backend.name == "postgresql" else "Access denied"
    text = assert_short_message(
        result,
        f"the server refused to create a database as user {user!r}",
        "(--alchemy-url = ",
        reason,
        "Fix: give that user the privilege to create and drop databases",
    )
    assert password not in text
    assert project.databases() == set()


# -- 7. import paths of the application's objects ---------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("alchemy_metadata", "nosuchmodule:Base", "importing 'nosuchmodule' failed"),
        ("alchemy_metadata", "models:NoSuch", "'models' has no attribute 'NoSuch'"),
        ("alchemy_metadata", "models", "is not an import path"),
        ("alchemy_metadata", "models:engine", "not a MetaData"),
        ("alchemy_engines", "models:Base", "not a SQLAlchemy Engine"),
        ("alchemy_engines", "models:NoSuch", "'models' has no attribute 'NoSuch'"),
        ("alchemy_sessionmakers", "models:engine", "not a sessionmaker"),
        ("alchemy_sessionmakers", "nosuchmodule:Session", "importing 'nosuchmodule' failed"),
    ],
)
def test_bad_import_path(project: Project, setting: str, value: str, problem: str) -> None:
    project.write("models.py", MODELS)
    project.ini(**{setting: value})
    project.write("test_db.py", NEEDS_DB)
    result, probe = run_probed(project)
    assert result.ret == USAGE_ERROR
    message = "\n".join(error_block(result))
    assert_short_message(result, setting, problem)
    assert re.search(rf"\b{setting}\b.*{re.escape(value)}", message), message
    # A setting that cannot work is found before anything is made on the server.
    assert probe.seen == set(), f"the run created {probe.seen} before it stopped"
    assert project.databases() == set()


# -- 8. alembic.ini that is not there ----------------------------------------------------------


def test_missing_alembic_ini(project: Project) -> None:
    project.ini(alchemy_alembic_ini="nope/alembic.ini")
    project.write("test_db.py", NEEDS_DB)
    result, probe = run_probed(project)
    assert result.ret == USAGE_ERROR
    missing = str(project.path / "nope" / "alembic.ini")
    assert_short_message(result, "alchemy_alembic_ini", "no such file", repr(missing))
    assert probe.seen == set(), f"the run created {probe.seen} before it stopped"
    assert project.databases() == set()


# -- 9. an application engine of another kind than the test database ------------------------


def test_app_engine_of_another_kind_of_database(project: Project) -> None:
    # The application hard-codes a URL of another backend than the test database's.
    other = (
        "postgresql+psycopg://app@127.0.0.1:1/app"
        if project.backend.name == "sqlite"
        else "sqlite:///dev.db"
    )
    project.write(
        "models.py",
        f"""
        from sqlalchemy import create_engine
        engine = create_engine({other!r})
        """,
    )
    project.write("test_db.py", NEEDS_DB)
    project.ini(alchemy_engines="models:engine")
    result, probe = run_probed(project)
    assert result.ret == USAGE_ERROR
    assert_short_message(
        result,
        "alchemy_engines entry 'models:engine' is a",
        "an engine cannot be moved to another kind of database",
        "alchemy_url_env",
    )
    assert probe.seen == set()
    assert not (project.path / "dev.db").exists()
    assert project.databases() == set()


# -- 10. attributes that raise when read -------------------------------------------------------

#: Application modules whose attribute cannot be read at import time, each in its own way.
RAISING_ATTRIBUTES = """
    class _Lazy:
        @property
        def engine(self):
            raise RuntimeError("Working outside of application context.")

    lazy = _Lazy()

    def __getattr__(name):
        if name == "settings":
            raise RuntimeError("settings are not configured yet")
        raise AttributeError(name)
"""


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("alchemy_engines", "app:lazy.engine", "RuntimeError: Working outside of application"),
        ("alchemy_sessionmakers", "app:lazy.engine", "RuntimeError: Working outside"),
        ("alchemy_metadata", "app:settings", "RuntimeError: settings are not configured yet"),
    ],
)
def test_import_path_whose_attribute_raises(
    project: Project, setting: str, value: str, problem: str
) -> None:
    project.write("app.py", RAISING_ATTRIBUTES)
    project.ini(**{setting: value})
    project.write("test_db.py", NEEDS_DB)
    result, probe = run_probed(project)
    assert result.ret == USAGE_ERROR
    assert_short_message(result, f"{setting} = {value!r}", "raised", problem, "Fix:")
    assert probe.seen == set(), f"the run created {probe.seen} before it stopped"
    assert project.databases() == set()


# -- 11. an engine behind a function that does not give one -------------------------------------

ENGINE_FUNCTIONS = """
    from sqlalchemy import create_engine

    def returns_a_string():
        return "sqlite:///dev.db"

    def raises():
        raise RuntimeError("no configuration loaded")

    def needs_an_argument(url):
        return create_engine(url)
"""


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("app:returns_a_string", "returned a str, not a SQLAlchemy Engine"),
        ("app:raises", "raised RuntimeError: no configuration loaded"),
        ("app:needs_an_argument", "cannot be called without arguments"),
    ],
)
def test_engine_function_that_gives_no_engine(project: Project, value: str, problem: str) -> None:
    project.write("app.py", ENGINE_FUNCTIONS)
    project.ini(alchemy_engines=value)
    project.write("test_db.py", NEEDS_DB)
    result, probe = run_probed(project)
    assert result.ret == USAGE_ERROR
    assert_short_message(result, f"alchemy_engines entry {value!r}", problem, "Fix:")
    assert probe.seen == set(), f"the run created {probe.seen} before it stopped"
    assert project.databases() == set()
    assert not (project.path / "dev.db").exists()


# -- 12. Flask-SQLAlchemy or an asyncio session in the wrong setting; async drivers ------

#: An application with a Flask-SQLAlchemy extension and SQLAlchemy's asyncio objects.
UNSUPPORTED_APP = """
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    db = SQLAlchemy(app)

    async_engine = create_async_engine("postgresql+psycopg://app@127.0.0.1:1/app")
    session = AsyncSession(async_engine)
"""

FLASK_SQLALCHEMY = "pytest-alchemy routes Flask-SQLAlchemy through its own settings"
NOT_ROUTED = "not an object pytest-alchemy routes"


@pytest.mark.parametrize(
    ("setting", "value", "fragments"),
    [
        ("alchemy_engines", "app:db", ["the Flask-SQLAlchemy extension", FLASK_SQLALCHEMY]),
        ("alchemy_engines", "app:db.engine", ["needs an application context", FLASK_SQLALCHEMY]),
        ("alchemy_sessionmakers", "app:db", ["the Flask-SQLAlchemy extension", FLASK_SQLALCHEMY]),
        ("alchemy_sessionmakers", "app:db.session", ["db.session", FLASK_SQLALCHEMY]),
        ("alchemy_sessionmakers", "app:session", ["an AsyncSession", NOT_ROUTED]),
    ],
)
def test_unsupported_integration_is_refused_with_what_to_list(
    project: Project, setting: str, value: str, fragments: list[str]
) -> None:
    project.write("app.py", UNSUPPORTED_APP)
    project.ini(**{setting: value})
    project.write("test_db.py", NEEDS_DB)
    result, probe = run_probed(project)
    assert result.ret == USAGE_ERROR
    fix = "alchemy_flask_db = " if fragments[-1] == FLASK_SQLALCHEMY else "async_sessionmaker"
    assert_short_message(result, setting, repr(value), *fragments, fix)
    assert probe.seen == set(), f"the run created {probe.seen} before it stopped"
    assert project.databases() == set()


#: The async driver of each backend's URLs whose package the test hides, and its extra.
ASYNC_DRIVERS = {
    "sqlite": ("aiosqlite", "aiosqlite"),
    "postgresql": ("psycopg_async", "psycopg-async"),
    "mariadb": ("aiomysql", "aiomysql"),
}


def async_url(backend: Backend, driver: str) -> str:
    if backend.url is None:
        return f"sqlite+{driver}:///app.db"
    return server_url(backend, drivername=f"{make_url(backend.url).get_backend_name()}+{driver}")


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_async_driver_not_installed_names_the_extra_before_anything_connects(
    project: Project, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    driver, extra = ASYNC_DRIVERS[project.backend.name]
    # The async side of psycopg is in psycopg itself: greenlet is what it may lack.
    module = {"psycopg_async": "greenlet"}.get(driver, driver)
    project.write("hide_driver.py", f"import sys\nsys.modules[{module!r}] = None\n")
    project.write("test_db.py", NEEDS_DB)
    url = async_url(project.backend, driver)
    result = run_with_url(project, monkeypatch, source, url, "-p", "hide_driver")
    assert result.ret == USAGE_ERROR
    assert_short_message(
        result,
        f"the async driver {driver!r} for {SOURCES[source]}",
        "is not installed",
        f"Fix: pip install 'pytest-alchemy[{extra}]'.",
    )
    assert project.databases() == set()


# -- 13. a host name that does not resolve ------------------------------------------------------


@pytest.mark.backends("postgresql", "mariadb")
def test_host_that_does_not_resolve(project: Project) -> None:
    # .invalid never resolves (RFC 2606): the resolver answers at once, nothing is sent.
    url = server_url(project.backend, host="no-such-host.invalid")
    project.ini()
    project.write("test_db.py", NEEDS_DB)
    start = time.monotonic()
    result = project.run("--alchemy-url", url)
    elapsed = time.monotonic() - start
    assert elapsed < 4, f"the run took {elapsed:.1f}s"
    assert result.ret not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    text = assert_short_message(
        result,
        "the host name 'no-such-host.invalid' does not resolve",
        "(--alchemy-url = ",
        "Fix: correct the host name in --alchemy-url",
    )
    assert "start the server" not in text
    assert project.databases() == set()


# -- 14. one form and documented exit codes for every error that stops the run --------------


@pytest.mark.parametrize(
    ("when", "code"),
    [
        ("configure", pytest.ExitCode.USAGE_ERROR),  # found before any test
        ("fixture", pytest.ExitCode.USAGE_ERROR),  # a setting found when the database is needed
        ("database", pytest.ExitCode.INTERRUPTED),  # the database, not a setting
    ],
)
def test_every_stop_has_one_form_and_its_exit_code(
    project: Project, when: str, code: pytest.ExitCode
) -> None:
    project.write("models.py", MODELS)
    project.write("test_db.py", NEEDS_DB)
    args: list[str] = []
    if when == "configure":
        project.ini()
        args = ["--alchemy-url", "not a url"]
    elif when == "fixture":
        project.ini(alchemy_metadata="models:NoSuch")
    else:
        project.ini()
        project.backend.create_foreign(project.path, project.test_db_name())
    result = project.run(*args)
    assert result.ret == code
    text = assert_short_message(result)
    starts = [line for line in text.splitlines() if line.startswith("ERROR: pytest-alchemy: ")]
    assert len(starts) == 1, text
    assert "_pytest.outcomes.Exit: pytest-alchemy:" not in text
