"""Finding and reading the Alembic configuration: ``alembic.ini``, ``pyproject.toml``'s
``[tool.alembic]`` table (Alembic >= 1.16), or both, with paths relative to the file.

The rule for what ``alchemy_alembic_ini`` names (documented on the fixture too):

- a file called ``pyproject.toml``: its ``[tool.alembic]`` table, plus the
  ``alembic.ini`` beside it when there is one (``alembic init -t pyproject`` writes both:
  the table for Alembic's options, the ini for ``sqlalchemy.url`` and logging);
- any other file: that ini, plus the ``pyproject.toml`` beside it when that has a
  ``[tool.alembic]`` table and Alembic >= 1.16 is installed (the ``alembic`` command run
  from beside the ini reads both, the ini winning where both set an option); when the
  ini does not exist, the ``pyproject.toml`` beside it alone, if it has the table;
- a directory: its ``alembic.ini`` and / or its ``pyproject.toml`` with the table.

Paths in the configuration (``script_location``, ``version_locations``,
``prepend_sys_path``) that are not absolute are taken relative to the directory of the
file that sets them, as when ``alembic`` runs from beside its ini; a path that exists only
relative to the working directory is left as written. ``%(here)s`` is Alembic's own.
See https://alembic.sqlalchemy.org/en/latest/tutorial.html#editing-the-ini-file and
https://alembic.sqlalchemy.org/en/latest/tutorial.html#using-pyproject-toml-for-configuration.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from .._errors import SettingError, first_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

INI = "alembic.ini"
PYPROJECT = "pyproject.toml"
#: Options that name paths, and whether a ``package:resource`` form is allowed.
#: Alembic < 1.16: the version_path_separator values.
_LEGACY_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}
_PATH_OPTIONS = {"script_location": True, "version_locations": True, "prepend_sys_path": False}


@dataclass(frozen=True)
class AlembicFiles:
    """The files that make up one Alembic configuration."""

    ini: Path | None
    toml: Path | None

    def shown(self) -> str:
        """The files, in words, for messages."""
        names = [str(p) for p in (self.toml, self.ini) if p is not None]
        return " and ".join(names)


def alembic_import(description: str) -> Any:
    """Alembic's ``Config`` class, or a SettingError saying how to install it."""
    try:
        from alembic.config import Config
    except ImportError:
        raise SettingError(
            f"pytest-alchemy: {description} needs Alembic, which is not installed.\n"
            "Fix: pip install 'pytest-alchemy[alembic]'."
        ) from None
    return Config


def _toml_supported() -> bool:
    from alembic.config import Config

    return hasattr(Config, "toml_alembic_config") and tomllib is not None


def _alembic_version() -> str:
    import alembic

    return str(getattr(alembic, "__version__", "unknown"))


def _alembic_table(path: Path, description: str) -> dict[str, Any] | None:
    """The ``[tool.alembic]`` table of a pyproject.toml (``None`` without one)."""
    if tomllib is None:  # pragma: no cover - Python 3.10 without tomli (Alembic < 1.16)
        return None
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise SettingError(
            f"pytest-alchemy: {description}: {path} is not valid TOML ({exc}).\n"
            "Fix: correct the file, until 'alembic history' reads it."
        ) from None
    except OSError as exc:
        raise SettingError(
            f"pytest-alchemy: {description}: {path} cannot be read ({exc}).\n"
            "Fix: name a readable pyproject.toml or alembic.ini."
        ) from None
    table = data.get("tool", {}).get("alembic")
    return table if isinstance(table, dict) else None


def find_files(path: Path, description: str) -> AlembicFiles:
    """The configuration files ``path`` names, by the rule in this module's docstring.

    Raises SettingError when there is none, when pyproject.toml is named but has no
    ``[tool.alembic]`` table, or needs an Alembic older than 1.16 cannot read."""
    alembic_import(description)
    if path.is_dir():
        ini = path / INI
        toml = path / PYPROJECT
        found = AlembicFiles(
            ini if ini.is_file() else None,
            toml if toml.is_file() and _has_table(toml, description) else None,
        )
        if found.ini is None and found.toml is None:
            raise SettingError(
                f"pytest-alchemy: {description}: the directory {str(path)!r} has neither "
                f"an {INI} nor a {PYPROJECT} with a [tool.alembic] table.\n"
                "Fix: name the Alembic configuration file (alembic.ini or pyproject.toml)."
            )
        return _supported(found, description, named_toml=found.ini is None)
    if path.name == PYPROJECT:
        if not path.is_file():
            raise SettingError(
                f"pytest-alchemy: {description}: no such file {str(path)!r}.\n"
                "Fix: give the path of pyproject.toml relative to the directory of the "
                "pytest configuration file."
            )
        if not _has_table(path, description):
            raise SettingError(
                f"pytest-alchemy: {description}: {path} has no [tool.alembic] table.\n"
                "Fix: name the file that configures Alembic (alembic.ini), or move "
                "Alembic's options into [tool.alembic] (alembic init -t pyproject)."
            )
        ini = path.parent / INI
        return _supported(
            AlembicFiles(ini if ini.is_file() else None, path), description, named_toml=True
        )
    if path.suffix == ".toml":
        raise SettingError(
            f"pytest-alchemy: {description}: {path} is a TOML file, and Alembic reads "
            f"its TOML configuration only from a file called {PYPROJECT}.\n"
            f"Fix: name a file called {PYPROJECT} (with a [tool.alembic] table) or an "
            "alembic.ini."
        )
    toml = path.parent / PYPROJECT
    has_toml = toml.is_file() and _toml_supported() and _has_table(toml, description)
    if path.is_file():
        return AlembicFiles(path, toml if has_toml else None)
    if has_toml and path.name == INI:
        return AlembicFiles(None, toml)
    raise SettingError(
        f"pytest-alchemy: {description}: no such file {str(path)!r}.\n"
        "Fix: give the path of alembic.ini (or pyproject.toml) relative to the directory "
        "of the pytest configuration file, or build from metadata with "
        "--alchemy-no-migrations."
    )


def _has_table(path: Path, description: str) -> bool:
    return _alembic_table(path, description) is not None


def _supported(found: AlembicFiles, description: str, *, named_toml: bool) -> AlembicFiles:
    if found.toml is None or _toml_supported():
        return found
    if not named_toml and found.ini is not None:
        return AlembicFiles(found.ini, None)  # as the alembic command of this version does
    raise SettingError(
        f"pytest-alchemy: {description}: Alembic reads its configuration from "
        f"{PYPROJECT} only from version 1.16 on; version {_alembic_version()} is "
        "installed.\nFix: pip install 'alembic>=1.16', or configure Alembic in alembic.ini."
    )


# -- the Config ----------------------------------------------------------------------------


def make_config(files: AlembicFiles, description: str, url: URL | None = None) -> Any:
    """An Alembic ``Config`` over ``files``, read (so that a malformed file fails here,
    with a SettingError), with paths resolved against the files' directories and, when
    ``url`` is given, ``sqlalchemy.url`` set to it."""
    alembic_config = alembic_import(description)
    lists_resolved = hasattr(alembic_config, "get_prepend_sys_paths_list")  # >= 1.16
    config_class = _config_class(alembic_config)
    kwargs: dict[str, Any] = {"file_": str(files.ini) if files.ini else None}
    if files.toml is not None:
        kwargs["toml_file"] = str(files.toml)
    cfg = config_class(**kwargs)
    cfg.pytest_alchemy_files = files
    try:
        parser = cfg.file_config
    except configparser.Error as exc:
        raise SettingError(
            f"pytest-alchemy: {description}: {files.ini} is not an ini file Alembic can "
            f"read ({first_line(exc)}).\nFix: correct it, until 'alembic history' reads it."
        ) from None
    if not parser.has_section(cfg.config_ini_section):
        parser.add_section(cfg.config_ini_section)
    if files.toml is not None:
        cfg.toml_alembic_config  # noqa: B018 - read now, so that errors surface here
    for name, resource in _PATH_OPTIONS.items():
        if name == "script_location" or not lists_resolved:
            _resolve_option(cfg, name, resource)
    if url is not None:
        rendered = url.render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def _config_class(base: Any) -> Any:
    """Alembic's Config, with the path lists of Alembic >= 1.16 resolved against the
    directory of the file that sets them."""

    class Config(base):  # type: ignore[misc]
        pytest_alchemy_files: AlembicFiles

        def get_version_locations_list(self) -> list[str] | None:
            found = super().get_version_locations_list()
            return _resolved_list(self, "version_locations", found, resource=True)

        def get_prepend_sys_paths_list(self) -> list[str] | None:
            found = super().get_prepend_sys_paths_list()
            return _resolved_list(self, "prepend_sys_path", found, resource=False)

    return Config


def _base_dir(cfg: Any, name: str) -> Path:
    files: AlembicFiles = cfg.pytest_alchemy_files
    in_ini = cfg.file_config.has_option(cfg.config_ini_section, name)
    source = files.ini if in_ini or files.toml is None else files.toml
    assert source is not None
    return source.absolute().parent


def _resolved_list(
    cfg: Any, name: str, found: list[str] | None, *, resource: bool
) -> list[str] | None:
    if not found:
        return found
    base = _base_dir(cfg, name)
    return [_resolve(entry, base, resource=resource) for entry in found]


def _resolve(entry: str, base: Path, *, resource: bool) -> str:
    entry = str(entry)
    if not entry or os.path.isabs(entry) or (resource and ":" in entry):
        return entry
    beside = base / entry
    if beside.exists() or not Path(entry).exists():
        return os.path.normpath(beside)
    return entry  # exists only relative to the working directory: as Alembic reads it


def _resolve_option(cfg: Any, name: str, resource: bool) -> None:
    """Rewrite one path option in the ini section (script_location on every version;
    the lists on Alembic < 1.16, which splits them on spaces, commas (and colons))."""
    getter = getattr(cfg, "get_alembic_option", cfg.get_main_option)
    value = getter(name)
    if not value or not isinstance(value, str):
        return
    base = _base_dir(cfg, name)
    if name == "script_location":
        resolved = _resolve(value, base, resource=resource)
    else:  # pragma: no cover - Alembic < 1.16
        separator = None
        if name == "version_locations":
            chosen = cfg.get_main_option("version_path_separator") or ""
            separator = _LEGACY_SEPARATORS.get(chosen)
        if separator:
            entries = [e.strip() for e in value.split(separator) if e.strip()]
        else:
            pattern = r", *| +|:" if name == "prepend_sys_path" else r", *| +"
            entries = [e for e in re.split(pattern, value) if e]
        joiner = separator or ","
        resolved = joiner.join(_resolve(e, base, resource=resource) for e in entries)
    if resolved != value:
        cfg.set_main_option(name, resolved.replace("%", "%%"))


# -- fingerprint and sys.path ---------------------------------------------------------------

_URL_LINE = re.compile(rb"^\s*sqlalchemy\.url\s*[=:].*$", re.MULTILINE)


def config_bytes(cfg: Any) -> list[bytes]:
    """What the configuration says, for the fingerprint: the ini's bytes without its
    ``sqlalchemy.url`` lines (the plugin replaces that URL), and the ``[tool.alembic]``
    table."""
    files: AlembicFiles = cfg.pytest_alchemy_files
    parts = [b"alembic config"]
    if files.ini is not None:
        parts.append(_URL_LINE.sub(b"", files.ini.read_bytes()))
    if files.toml is not None:
        table = dict(cfg.toml_alembic_config)
        parts.append(json.dumps(table, sort_keys=True, default=str).encode())
    return parts


@contextmanager
def sys_path_restored() -> Iterator[list[str]]:
    """Undo what Alembic's ``prepend_sys_path`` (and env.py) do to ``sys.path``.

    The modules env.py imported stay imported; tests import the application through
    pytest's own ``pythonpath`` (or their rootdir), as they would without the plugin, so
    that a run that reuses a database (and runs no env.py) sees the same ``sys.path`` as
    one that builds it. Yields ``sys.path`` as it is inside."""
    saved = list(sys.path)
    try:
        yield sys.path
    finally:
        sys.path[:] = saved
