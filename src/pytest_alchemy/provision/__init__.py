"""The registry of per-dialect provisioners: backend name to the class that creates,
marks and drops test databases on it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.exc import NoSuchModuleError

from .._errors import SettingError
from ._base import Provisioner, ServerProvisioner, is_plugin_dialect, plugin_engine
from ._marker import LEGACY_PART, MARKER_TABLE, Marker
from ._mysql import MySQLProvisioner
from ._postgresql import PostgresProvisioner
from ._sqlite import SQLiteProvisioner

__all__ = [
    "LEGACY_PART",
    "MARKER_TABLE",
    "Marker",
    "Provisioner",
    "ServerProvisioner",
    "is_plugin_dialect",
    "plugin_engine",
    "provisioner_class",
    "provisioner_for",
    "register",
]

_REGISTRY: dict[str, type[Provisioner]] = {}

#: Driver modules whose package on PyPI has another name.
_PIP_NAMES = {"MySQLdb": "mysqlclient", "psycopg2": "psycopg2-binary", "_mysql": "mysqlclient"}


def register(cls: type[Provisioner]) -> type[Provisioner]:
    """Register a provisioner class for each backend it names."""
    for backend in cls.backends:
        _REGISTRY[backend] = cls
    return cls


for _cls in (PostgresProvisioner, MySQLProvisioner, SQLiteProvisioner):
    register(_cls)


def provisioner_class(url: URL, source: str) -> type[Provisioner]:
    """The provisioner class for a URL's backend, or a SettingError naming the choices."""
    backend = url.get_backend_name()
    cls = _REGISTRY.get(backend)
    if cls is None:
        known = ", ".join(sorted(_REGISTRY))
        raise SettingError(
            f"pytest-alchemy: {source} names the backend {backend!r}, which pytest-alchemy "
            f"cannot provision test databases on.\nFix: use one of {known}."
        )
    return cls


def check_driver(url: URL, source: str) -> None:
    """Fail early, naming the pip extra, when the URL's driver is not installed (or is an
    async one that cannot run over a sync one)."""
    cls = provisioner_class(url, source)
    try:
        dialect_cls = url.get_dialect()
    except NoSuchModuleError:
        raise SettingError(
            f"pytest-alchemy: {source} names the driver {url.drivername!r}, which SQLAlchemy "
            f"does not know.\nFix: use a driver SQLAlchemy supports, for example "
            f"{_suggestion(cls)}."
        ) from None
    if getattr(dialect_cls, "is_async", False):
        # An async driver pytest-alchemy cannot run over a sync one (those it can were
        # swapped for their sync driver by the settings): refused before it is imported.
        raise SettingError(
            f"pytest-alchemy: {source} names the async driver {url.get_driver_name()!r} "
            f"({url.drivername}://...), which cannot share the test's connection.\nFix: use "
            "its sync driver (async fixtures and engines then use an async driver over "
            f"it), for example {_suggestion(cls)}."
        )
    try:
        dialect_cls.import_dbapi()
    except ImportError as exc:
        driver = url.get_driver_name()
        extra = cls.extras.get(driver)
        if extra is not None:
            fix = f"pip install 'pytest-alchemy[{extra}]'"
        else:
            module = exc.name or driver
            package = _PIP_NAMES.get(module, module)
            fix = f"pip install {package}, or use {_suggestion(cls)}"
        raise SettingError(
            f"pytest-alchemy: the driver {driver!r} for {source} "
            f"({url.drivername}://...) is not installed ({exc}).\nFix: {fix}."
        ) from None


def _suggestion(cls: type[Provisioner]) -> str:
    if not cls.extras:
        return f"{cls.backends[0]}://"
    driver, extra = next(iter(cls.extras.items()))
    return f"{cls.backends[0]}+{driver}:// with pip install 'pytest-alchemy[{extra}]'"


def provisioner_for(url: URL, *, source: str, sqlite_dir: Path) -> Provisioner:
    """A provisioner for the server and base database of ``url``."""
    check_driver(url, source)
    return provisioner_class(url, source)(url, source=source, sqlite_dir=sqlite_dir)
