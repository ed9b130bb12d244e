"""Settings: where each comes from (command line, then environment, then ini), and
loading the application objects that ini lines name."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
from sqlalchemy import MetaData
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import scoped_session, sessionmaker

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

from ._errors import SettingError, first_line
from ._urls import parse_url

URL_ENV = "PYTEST_ALCHEMY_URL"
#: The base URL when none is set: a SQLite file in the user's cache directory.
DEFAULT_URL = "sqlite://"


@dataclass(frozen=True)
class Settings:
    """The run's settings as the command line, environment and ini give them."""

    url: URL
    url_source: str
    metadata: str | None = None
    alembic_ini: Path | None = None
    no_migrations: bool = False
    engines: Sequence[str] = ()
    sessionmakers: Sequence[str] = ()
    url_env: str | None = None
    reuse_db: bool = False
    create_db: bool = False
    #: Seconds a statement waits for a lock (and a thread for its turn) before failing.
    lock_timeout: float = 10.0
    sqlite_dir: Path = field(
        default_factory=lambda: Path(platformdirs.user_cache_dir("pytest-alchemy", appauthor=False))
    )
    #: ``package.module:function`` run on a new test database before its schema is built.
    prepare_database: str | None = None
    #: ``package.module:create_app`` (or ``:app``) of a Flask-SQLAlchemy application.
    flask_app: str | None = None
    #: ``package.module:db``, its Flask-SQLAlchemy extension.
    flask_db: str | None = None
    #: The pytest scope of the app the factory makes: session, package, module, class
    #: or function.
    flask_app_scope: str = "session"
    #: Base URLs of further binds' test databases, by bind key (``alchemy_bind_urls``).
    bind_urls: Mapping[str, str] = field(default_factory=dict)
    #: Test data factories (``package.module:Factory`` or ``package.module``) to bind.
    factories: Sequence[str] = ()
    #: The async driver ``url`` named (``url`` itself holds the sync driver it runs over).
    async_driver: str | None = None
    #: The environment variable set to the test database's URL with an async driver.
    async_url_env: str | None = None


def resolve_settings(
    *,
    option: Callable[[str], Any],
    ini: Callable[[str], Any],
    environ: dict[str, str] | os._Environ[str],
    rootpath: Path,
    inipath: Path | None,
) -> Settings:
    """Resolve the settings; ``option`` and ``ini`` read command-line options and ini
    values by name."""
    ini_name = f"{inipath.name}" if inipath is not None else "the ini file"
    cli_url = option("alchemy_url")
    if cli_url:
        raw, source = cli_url, "--alchemy-url"
    elif environ.get(URL_ENV):
        raw, source = environ[URL_ENV], f"the environment variable {URL_ENV}"
    elif ini("alchemy_url"):
        raw, source = ini("alchemy_url"), f"alchemy_url in {ini_name}"
    else:
        raw, source = DEFAULT_URL, "the default SQLite URL"
    url = parse_url(str(raw).strip(), source)
    async_driver = None
    if _is_async_url(url):
        from .isolation._asyncio import sync_url

        async_driver, url = url.get_driver_name(), sync_url(url)

    base = inipath.parent if inipath is not None else rootpath
    alembic_ini = ini("alchemy_alembic_ini")
    url_env = (ini("alchemy_url_env") or "").strip() or None
    return Settings(
        url=url,
        url_source=source,
        metadata=(ini("alchemy_metadata") or "").strip() or None,
        alembic_ini=(base / str(alembic_ini).strip()) if alembic_ini else None,
        no_migrations=bool(option("alchemy_no_migrations")),
        engines=_lines(ini("alchemy_engines")),
        sessionmakers=_lines(ini("alchemy_sessionmakers")),
        url_env=url_env,
        lock_timeout=_seconds(ini("alchemy_lock_timeout"), "alchemy_lock_timeout"),
        reuse_db=bool(option("alchemy_reuse_db")),
        create_db=bool(option("alchemy_create_db")),
        sqlite_dir=sqlite_dir(rootpath),
        prepare_database=(ini("alchemy_prepare_database") or "").strip() or None,
        **_flask_settings(ini),
        factories=_lines(ini("alchemy_factories")),
        async_driver=async_driver,
        async_url_env=(ini("alchemy_async_url_env") or "").strip() or None,
    )


def _is_async_url(url: URL) -> bool:
    """Whether ``url`` names an async driver that can run over a sync one (others are
    refused with the drivers to use when the URL is checked)."""
    from .isolation._facades import async_driver

    try:
        return async_driver(url.get_driver_name()) is not None
    except Exception:  # a dialect SQLAlchemy does not know: refused when checked
        return False


_SCOPES = ("session", "package", "module", "class", "function")


def _flask_settings(ini: Callable[[str], Any]) -> dict[str, Any]:
    app = (ini("alchemy_flask_app") or "").strip() or None
    db = (ini("alchemy_flask_db") or "").strip() or None
    scope = (ini("alchemy_flask_app_scope") or "").strip() or "session"
    if bool(app) != bool(db):
        given, missing = ("alchemy_flask_app", "alchemy_flask_db")[:: 1 if app else -1]
        raise SettingError(
            f"pytest-alchemy: {given} is set but {missing} is not; a Flask-SQLAlchemy app "
            "needs both.\nFix: set alchemy_flask_app = package.module:create_app and "
            "alchemy_flask_db = package.module:db (the SQLAlchemy() extension)."
        )
    if scope not in _SCOPES:
        raise SettingError(
            f"pytest-alchemy: alchemy_flask_app_scope = {scope!r} is not a pytest scope.\n"
            f"Fix: use one of {', '.join(_SCOPES)}."
        )
    bind_urls = {}
    for line in _lines(ini("alchemy_bind_urls")):
        key, equals, url = (part.strip() for part in line.partition("="))
        if not equals or not key or not url:
            raise SettingError(
                f"pytest-alchemy: alchemy_bind_urls line {line!r} is not 'key = url'.\n"
                "Fix: write one bind a line, e.g. audit = postgresql+psycopg://host/audit."
            )
        bind_urls[key] = url
    if bind_urls and not app:
        raise SettingError(
            "pytest-alchemy: alchemy_bind_urls names the test databases of "
            "Flask-SQLAlchemy binds, but alchemy_flask_app is not set.\nFix: set "
            "alchemy_flask_app and alchemy_flask_db, or remove alchemy_bind_urls."
        )
    return {"flask_app": app, "flask_db": db, "flask_app_scope": scope, "bind_urls": bind_urls}


def _seconds(value: Any, setting: str) -> float:
    try:
        seconds = float(str(value).strip() or "10")
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise SettingError(
            f"pytest-alchemy: {setting} = {value!r} is not a number of seconds.\n"
            f"Fix: set {setting} to a positive number of seconds, e.g. 10."
        )
    return seconds


def _lines(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        value = value.splitlines()
    return tuple(line.strip() for line in value if line.strip())


def sqlite_dir(rootpath: Path) -> Path:
    """Where SQLite test databases live: a folder of this project's (named after the
    rootdir and a digest of its resolved path, so that two projects never share one) in
    the user's cache directory (``platformdirs.user_cache_dir("pytest-alchemy")``, which
    follows ``XDG_CACHE_HOME`` on Linux). Not under pytest's temporary root, which pytest
    prunes: ``--alchemy-reuse-db`` must find the file again in a later run."""
    root = Path(platformdirs.user_cache_dir("pytest-alchemy", appauthor=False))
    project = hashlib.sha256(str(rootpath.resolve()).encode()).hexdigest()[:12]
    return root / f"{rootpath.name}-{project}"


# -- application objects named by "package.module:attribute" --------------------------


def import_object(path: str, setting: str) -> Any:
    """Import ``package.module:attribute`` (dots after the colon walk attributes)."""
    module_name, colon, attr_path = path.partition(":")
    if not colon or not module_name or not attr_path:
        raise SettingError(
            f"pytest-alchemy: {setting} = {path!r} is not an import path.\n"
            "Fix: use the form package.module:attribute, for example app.models:Base."
        )
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise SettingError(
            f"pytest-alchemy: {setting} = {path!r}: importing {module_name!r} failed "
            f"({type(exc).__name__}: {exc}).\n"
            "Fix: check the module path, and that the application is installed or on "
            "pytest's pythonpath."
        ) from None
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SettingError(
                f"pytest-alchemy: {setting} = {path!r}: {module_name!r} has no attribute "
                f"{attr_path!r}.\nFix: name an attribute the module defines."
            ) from None
        except Exception as exc:
            # A property, a module __getattr__ or a proxy that needs some set-up first
            # (Flask's application context...).
            if _flask_sqlalchemy_kind(target) is not None:  # db.engine outside the app
                raise SettingError(
                    f"pytest-alchemy: {setting} = {path!r} reads {part!r} of "
                    f"{_flask_sqlalchemy_kind(target)}, which needs an application context; "
                    f"{_FLASK_SQLALCHEMY}"
                ) from None
            reason = first_line(exc).rstrip(".")
            raise SettingError(
                f"pytest-alchemy: {setting} = {path!r}: reading {part!r} raised "
                f"{type(exc).__name__}: {reason}.\nFix: name an object that can be read "
                "right after import, without an application context or other set-up."
            ) from None
    return target


def as_metadata(obj: Any, setting: str) -> MetaData:
    """A ``MetaData``, or the ``.metadata`` of a declarative base or SQLModel."""
    if isinstance(obj, MetaData):
        return obj
    metadata = getattr(obj, "metadata", None)
    if isinstance(metadata, MetaData):
        return metadata
    raise SettingError(
        f"pytest-alchemy: {setting} is a {type(obj).__name__}, not a MetaData.\n"
        "Fix: name a MetaData, or a declarative base / SQLModel class with a .metadata."
    )


def as_engine(obj: Any, setting: str, *, call: bool = False) -> Engine | AsyncEngine:
    """An ``Engine`` or ``AsyncEngine``; with ``call``, also what a zero-argument function
    (for example a ``functools.lru_cache``'d ``get_engine()``) returns, calling it once."""
    if isinstance(obj, Engine) or _is_async(obj, "AsyncEngine"):
        return obj  # type: ignore[no-any-return]
    _refuse_unsupported(obj, f"{setting} is")
    if call and _is_engine_function(obj):
        result = _call_engine_function(obj, setting)
        if isinstance(result, Engine) or _is_async(result, "AsyncEngine"):
            return result  # type: ignore[no-any-return]
        _refuse_unsupported(result, f"{setting} is a function that returned")
        raise SettingError(
            f"pytest-alchemy: {setting} is a function that returned a "
            f"{type(result).__name__}, not a SQLAlchemy Engine.\nFix: name the Engine "
            "itself, or a function that takes no arguments and returns it."
        )
    raise SettingError(
        f"pytest-alchemy: {setting} is a {type(obj).__name__}, not a SQLAlchemy Engine.\n"
        "Fix: list the application's Engine objects (module:attribute), one a line."
    )


def load_engine(path: str) -> Engine | AsyncEngine:
    """The Engine that an ``alchemy_engines`` line names (or that the function it names
    returns)."""
    return as_engine(
        import_object(path, "alchemy_engines"), f"alchemy_engines entry {path!r}", call=True
    )


def _is_engine_function(obj: Any) -> bool:
    # Classes (a declarative base...) and session factories are callable too, but calling
    # them makes no engine.
    return (
        callable(obj)
        and not isinstance(obj, (type, sessionmaker, scoped_session))
        and not _is_async(obj, "async_sessionmaker", "async_scoped_session")
    )


def _call_engine_function(function: Any, setting: str) -> Any:
    try:
        inspect.signature(function).bind()
    except TypeError:
        raise SettingError(
            f"pytest-alchemy: {setting} is a function that cannot be called without "
            "arguments.\nFix: name the Engine itself, or a function that takes no arguments "
            "and returns it."
        ) from None
    except ValueError:  # no signature to read (some builtins): just call it
        pass
    try:
        return function()
    except Exception as exc:
        reason = first_line(exc).rstrip(".")
        raise SettingError(
            f"pytest-alchemy: {setting} is a function, and calling it raised "
            f"{type(exc).__name__}: {reason}.\nFix: make it return the application's "
            "Engine when called at start-up, or name the Engine itself."
        ) from None


def as_session_factory(obj: Any, setting: str) -> Any:
    """A ``sessionmaker``, ``scoped_session``, ``async_sessionmaker`` or
    ``async_scoped_session`` (the router's ``SessionFactory``)."""
    if _is_async(obj, "async_sessionmaker", "async_scoped_session"):
        return obj
    _refuse_unsupported(obj, f"{setting} is")
    if isinstance(obj, sessionmaker):
        return obj
    if isinstance(obj, scoped_session) and isinstance(obj.session_factory, sessionmaker):
        return obj
    raise SettingError(
        f"pytest-alchemy: {setting} is a {type(obj).__name__}, not a sessionmaker or a "
        "scoped_session over one (or their asyncio versions).\nFix: list the "
        "application's sessionmaker / scoped_session / async_sessionmaker objects "
        "(module:attribute), one a line."
    )


# -- integrations that are not supported yet ------------------------------------------------
# Recognised by the modules their classes come from, so that nothing is imported for the
# check (Flask-SQLAlchemy may not be installed; sqlalchemy.ext.asyncio needs greenlet).

_FLASK_SQLALCHEMY = (
    "pytest-alchemy routes Flask-SQLAlchemy through its own settings, not this one.\n"
    "Fix: set alchemy_flask_app = package.module:create_app and alchemy_flask_db = "
    "package.module:db (the SQLAlchemy() extension), and remove this line."
)
_ASYNCIO = (
    "it is not an object pytest-alchemy routes.\n"
    "Fix: list the application's AsyncEngine, async_sessionmaker or async_scoped_session "
    "(the object that makes sessions and connections, not one session or connection)."
)


def _in_package(cls: type, package: str) -> bool:
    module = getattr(cls, "__module__", None) or ""
    return module == package or module.startswith(f"{package}.")


def _flask_sqlalchemy_kind(obj: Any) -> str | None:
    """What a Flask-SQLAlchemy object is, in words; ``None`` for anything else."""
    classes = list(type(obj).__mro__)
    factory = obj.session_factory if isinstance(obj, scoped_session) else obj
    if isinstance(factory, sessionmaker):  # db.session: a scoped_session of its Session
        classes.extend(factory.class_.__mro__)
    if not any(_in_package(cls, "flask_sqlalchemy") for cls in classes):
        return None
    if isinstance(obj, scoped_session):
        return "Flask-SQLAlchemy's db.session (a scoped_session of its Session class)"
    if isinstance(obj, sessionmaker):
        return "a sessionmaker of Flask-SQLAlchemy's Session class"
    if type(obj).__name__ == "SQLAlchemy":
        return "the Flask-SQLAlchemy extension (db = SQLAlchemy())"
    return f"a Flask-SQLAlchemy {type(obj).__name__}"


def _is_async(obj: Any, *names: str) -> bool:
    """Whether ``obj`` is one of the named classes of ``sqlalchemy.ext.asyncio`` (imported
    only when ``obj`` comes from there)."""
    from .isolation._asyncio import is_async_object

    return is_async_object(obj, *names)


def _asyncio_kind(obj: Any) -> str | None:
    """What an object of SQLAlchemy's asyncio extension is, in words; ``None`` otherwise."""
    if any(_in_package(cls, "sqlalchemy.ext.asyncio") for cls in type(obj).__mro__):
        return f"an {type(obj).__name__} (sqlalchemy.ext.asyncio)"
    return None


def _refuse_unsupported(obj: Any, subject: str) -> None:
    """Stop on a Flask-SQLAlchemy or asyncio object, with what to list instead."""
    kind = _flask_sqlalchemy_kind(obj)
    if kind is not None:
        raise SettingError(f"pytest-alchemy: {subject} {kind}; {_FLASK_SQLALCHEMY}")
    kind = _asyncio_kind(obj)
    if kind is not None:
        raise SettingError(f"pytest-alchemy: {subject} {kind}; {_ASYNCIO}")
