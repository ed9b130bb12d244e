"""Flask-SQLAlchemy 3: the test database's URL pinned into every Flask app's config
before its factory runs, the app built under a guard, and checks on what it built.

Flask creates each app's config in ``Flask.make_config``; while :class:`ConfigPin` is
installed, that config is an instance of a subclass of the app's own config class whose
writes of ``SQLALCHEMY_DATABASE_URI`` (and of a ``url`` in ``SQLALCHEMY_ENGINE_OPTIONS``)
store the test database URL instead, tagged for :mod:`._engines`. Flask-SQLAlchemy reads
those keys with ``config.setdefault`` in ``SQLAlchemy.init_app``
(https://flask-sqlalchemy.readthedocs.io/en/stable/config/), which pins them again, so
whatever a factory writes (``from_object``, ``from_mapping``, ``update``, a test config
dict, environment variables) the engines it makes are the test database's. Flask is
imported only when this module's functions run.
"""

from __future__ import annotations

import os
import sysconfig
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import URL, Engine

from .._errors import AlchemyError, SettingError, first_line
from .._urls import render_url
from ..provision import Provisioner
from ..schema import ForeignConnectionRefused, only_connections_to
from ._engines import tagged

URI = "SQLALCHEMY_DATABASE_URI"
BINDS = "SQLALCHEMY_BINDS"
ENGINE_OPTIONS = "SQLALCHEMY_ENGINE_OPTIONS"
#: Flask-SQLAlchemy-Lite's engines: name to URL or options, "default" the default one.
ENGINES = "SQLALCHEMY_ENGINES"
PINNED = (URI, BINDS, ENGINE_OPTIONS, ENGINES)
LITE_DEFAULT = "default"


class ConfigPin:
    """Pins the database keys of each Flask app's config to the test databases while
    installed: ``url(None)`` for ``SQLALCHEMY_DATABASE_URI``, ``url(key)`` for each key of
    ``SQLALCHEMY_BINDS`` (a URL, or a dict's ``"url"``, its other options kept).

    ``url`` is called at each write, so that an app made while the schema is built gets
    the URLs of the databases being built. The bind keys seen are kept in :attr:`binds`.
    """

    def __init__(self, url: Callable[[str | None], URL]) -> None:
        self._url = url
        #: The bind keys apps were configured with.
        self.binds: set[str] = set()
        #: Config keys whose engine options had a ``creator`` (removed: it would connect
        #: wherever it likes).
        self.creators: set[str] = set()

    def _options(self, key: str, options: Mapping[str, Any], url: str) -> dict[str, Any]:
        pinned = {**options, "url": url}
        if pinned.pop("creator", None) is not None:
            self.creators.add(key)
        return pinned

    def uri(self, key: str | None = None) -> str:
        return tagged(self._url(key), key).render_as_string(hide_password=False)

    def value(self, key: str, value: Any) -> Any:
        """What the config stores when ``value`` is written to ``key``."""
        if key == URI:
            return self.uri()
        if key in (BINDS, ENGINES) and isinstance(value, Mapping):
            default = LITE_DEFAULT if key == ENGINES else None
            pinned: dict[Any, Any] = {}
            for bind, options in value.items():
                if bind is None or bind == default:
                    url = self.uri()
                else:
                    self.binds.add(str(bind))
                    url = self.uri(str(bind))
                if isinstance(options, Mapping):
                    pinned[bind] = self._options(f"{key}[{bind!r}]", options, url)
                else:
                    pinned[bind] = url
            return pinned
        if (
            key == ENGINE_OPTIONS
            and isinstance(value, Mapping)
            and value.keys() & {"url", "creator"}
        ):
            return self._options(key, value, self.uri())
        return value

    @contextmanager
    def installed(self) -> Iterator[None]:
        """While inside, every Flask app made gets a pinned config."""
        from flask import Flask

        original = Flask.make_config
        pin = self

        def make_config(app: Any, instance_relative: bool = False) -> Any:
            config = original(app, instance_relative)
            config.__class__ = _pinned_class(type(config), pin)
            config[URI] = None
            return config

        setattr(Flask, "make_config", make_config)  # noqa: B010 - restored below
        try:
            yield
        finally:
            setattr(Flask, "make_config", original)  # noqa: B010


def _pinned_class(base: type[dict[str, Any]], pin: ConfigPin) -> type:
    def __setitem__(self: Any, key: str, value: Any) -> None:
        base.__setitem__(self, key, pin.value(key, value))

    def update(self: Any, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self: Any, key: str, default: Any = None) -> Any:
        self[key] = base.__getitem__(self, key) if key in self else default
        return base.__getitem__(self, key)

    def get(self: Any, key: str, default: Any = None) -> Any:
        if key in PINNED and key in self:  # pinned again: a nested write may have changed it
            self[key] = base.__getitem__(self, key)
        return base.get(self, key, default)

    def __ior__(self: Any, other: Any) -> Any:
        self.update(other)
        return self

    namespace = {
        "__setitem__": __setitem__,
        "update": update,
        "setdefault": setdefault,
        "get": get,
        "__ior__": __ior__,
        "__module__": base.__module__,
    }
    return type(f"Pinned{base.__name__}", (base,), namespace)


# -- the settings' objects --------------------------------------------------------------


def check_app_or_factory(obj: Any, setting: str) -> Any:
    """A Flask app, or a callable that makes one. Raises SettingError otherwise."""
    from flask import Flask

    if isinstance(obj, Flask) or callable(obj):
        return obj
    raise SettingError(
        f"pytest-alchemy: {setting} is a {type(obj).__name__}, not a Flask app or a "
        "function that returns one.\nFix: name the app factory (package.module:create_app) "
        "or the app object (package.module:app)."
    )


def check_db(obj: Any, setting: str) -> Any:
    """The Flask-SQLAlchemy (or Flask-SQLAlchemy-Lite) extension. Raises SettingError
    for anything else."""
    if is_lite(obj):
        return obj
    try:
        from flask_sqlalchemy import SQLAlchemy
    except ImportError:
        raise SettingError(
            f"pytest-alchemy: {setting} needs Flask-SQLAlchemy, which is not installed."
            "\nFix: pip install flask-sqlalchemy."
        ) from None
    if isinstance(obj, SQLAlchemy):
        return obj
    what = f"the class {obj.__name__}" if isinstance(obj, type) else f"a {type(obj).__name__}"
    raise SettingError(
        f"pytest-alchemy: {setting} is {what}, not the Flask-SQLAlchemy "
        "extension.\nFix: name the extension object (db = SQLAlchemy(), e.g. "
        "package.extensions:db)."
    )


def is_lite(db: Any) -> bool:
    """Whether ``db`` is Flask-SQLAlchemy-Lite's extension (engines in
    ``SQLALCHEMY_ENGINES``, no models of its own, ``db.session`` a Session)."""
    return any(
        cls.__module__.startswith("flask_sqlalchemy_lite") and cls.__name__ == "SQLAlchemy"
        for cls in type(db).__mro__
    )


def session_of(db: Any) -> Any:
    """The session the app's code uses in the current app context: ``db.session()``
    (a scoped_session's) with Flask-SQLAlchemy, ``db.session`` with Flask-SQLAlchemy-Lite."""
    return db.session if is_lite(db) else db.session()


def metadata_of(db: Any, key: str | None) -> Any:
    """The MetaData of bind ``key`` (None: the default bind) that ``db`` keeps for the
    models imported so far; an empty one when no model uses that bind."""
    from sqlalchemy import MetaData

    found = db.metadatas.get(key)
    if found is None:
        return db.metadata if key is None else MetaData()
    return found


# -- making the app --------------------------------------------------------------------


def make_app(
    app_or_factory: Any,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    setting: str,
    test_url: URL,
    provisioner: Provisioner,
    others: Callable[[], Sequence[URL]],
) -> Any:
    """The app: ``app_or_factory`` itself, or what calling it with ``args`` and ``kwargs``
    returns. While the factory runs, a connection to any database but ``test_url`` and
    those ``others()`` gives is refused; the run stops (AlchemyError) when the factory made
    one, even if it caught the error, and when it raises (SettingError, with its own
    error and where)."""
    from flask import Flask

    if isinstance(app_or_factory, Flask):
        return app_or_factory
    refused: list[str] = []
    try:
        with only_connections_to(test_url, provisioner, others, refused):
            app = app_or_factory(*args, **kwargs)
    except ForeignConnectionRefused:
        pass
    except AlchemyError:
        raise
    except (Exception, SystemExit) as exc:
        raise SettingError(_raised(exc, setting)) from None
    if refused:
        raise AlchemyError(
            f"pytest-alchemy: {setting} connected to {refused[0]}, which is not the test "
            "database, while it ran; the connection was stopped before it was made.\n"
            "Fix: make the factory take its database URLs from app.config "
            f"({URI}), which pytest-alchemy points at the test database."
        )
    if not isinstance(app, Flask):
        raise SettingError(
            f"pytest-alchemy: {setting} returned a {type(app).__name__}, not a Flask app."
            "\nFix: name a factory that returns the app (or the app object itself)."
        )
    return app


def _raised(exc: BaseException, setting: str) -> str:
    if isinstance(exc, SystemExit):
        what = (
            f"exited (SystemExit {exc.code!r}); Flask-Migrate's upgrade() exits this "
            "way when a migration fails, after logging why"
        )
    else:
        what = f"raised {type(exc).__name__}: {first_line(exc)}"
    frames = traceback.extract_tb(exc.__traceback__)
    installed = {sysconfig.get_paths()[name] for name in ("stdlib", "purelib", "platlib")}
    skipped = (os.path.dirname(os.path.dirname(__file__)), *map(os.path.realpath, installed))
    own = [f for f in frames if not os.path.realpath(f.filename).startswith(skipped)]
    where = f" (at {own[-1].filename}:{own[-1].lineno})" if own else ""
    if isinstance(exc, TypeError) and "argument" in str(exc):
        fix = (
            "give the factory its arguments: override the alchemy_flask_app_args fixture "
            "in conftest.py (return (args, kwargs))."
        )
    else:
        fix = "correct the factory, or give it other arguments through alchemy_flask_app_args."
    return f"pytest-alchemy: {setting} {what}{where}.\nFix: {fix}"


def check_engines(app: Any, db: Any, setting: str, routed: Callable[[Engine], bool]) -> None:
    """Every engine ``db`` has for ``app`` is routed; otherwise the run stops (SettingError)."""
    if app.extensions.get("sqlalchemy") is not db:
        raise SettingError(
            f"pytest-alchemy: the app made by {setting} does not use alchemy_flask_db "
            "(db.init_app(app) was not called on it, or on another SQLAlchemy object).\n"
            "Fix: set alchemy_flask_db to the extension the app initialises."
        )
    with app.app_context():
        engines = dict(db.engines)
    for key, engine in engines.items():
        if not routed(engine):
            bind = "the default bind" if key is None else f"the bind {key!r}"
            raise SettingError(
                f"pytest-alchemy: {bind} of the app made by {setting} has an engine "
                f"pytest-alchemy did not see created ({render_url(engine.url)}); its "
                "writes would not be rolled back. Either the app was made before "
                "pytest-alchemy was configured (imported by a plugin loaded before it: "
                "-p, or an entry point), or its engine was not made from "
                f"app.config[{URI!r}].\nFix: let the app be made by the factory named "
                "in alchemy_flask_app (or imported by conftest.py or test modules), and "
                "let Flask-SQLAlchemy make its engines from the config."
            )


def check_creators(pin: ConfigPin, setting: str) -> None:
    """Stop (SettingError) when an app's engine options had a ``creator``."""
    if pin.creators:
        raise SettingError(
            f"pytest-alchemy: the app made by {setting} sets a 'creator' in "
            f"{', '.join(sorted(pin.creators))}: a function that connects wherever it "
            "likes, which pytest-alchemy cannot point at the test database; it was "
            "removed before any engine used it, and the run stops.\nFix: let the engine "
            "connect from the URL (driver options go in 'connect_args')."
        )
