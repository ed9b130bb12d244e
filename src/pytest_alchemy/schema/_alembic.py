"""The schema from Alembic migrations: ``alembic upgrade head`` on the test database."""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, Dialect, Engine

from .._errors import AlchemyError, SettingError, first_line
from ..provision import Provisioner
from ._guard import ForeignConnectionRefused, only_connections_to
from ._source import Fingerprint, digest


class AlembicSchema:
    """``alembic upgrade head`` on the test database, with a guard that refuses any
    connection env.py makes to another database."""

    def __init__(self, ini_path: Path, description: str) -> None:
        self.ini_path = ini_path
        self.description = description

    # -- alembic objects ----------------------------------------------------------------

    def _config(self, url: URL | None = None) -> Any:
        try:
            from alembic.config import Config
        except ImportError:
            raise SettingError(
                f"pytest-alchemy: {self.description} needs Alembic, which is not installed.\n"
                "Fix: pip install 'pytest-alchemy[alembic]'."
            ) from None
        if not self.ini_path.is_file():
            raise SettingError(
                f"pytest-alchemy: {self.description}: no such file {str(self.ini_path)!r}.\n"
                "Fix: give the path of alembic.ini relative to the directory of the pytest "
                "configuration file, or build from metadata with --alchemy-no-migrations."
            )
        cfg = Config(str(self.ini_path))
        location = cfg.get_main_option("script_location")
        if location and ":" not in location and not os.path.isabs(location):
            # Alembic resolves this against the working directory; a user runs alembic
            # from beside alembic.ini, pytest may run from anywhere.
            beside_ini = self.ini_path.parent / location
            if not Path(location).exists() and beside_ini.exists():
                cfg.set_main_option("script_location", str(beside_ini))
        if url is not None:
            rendered = url.render_as_string(hide_password=False)
            cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
        return cfg

    def _scripts(self, cfg: Any) -> Any:
        from alembic.script import ScriptDirectory
        from alembic.util import CommandError

        try:
            return ScriptDirectory.from_config(cfg)
        except CommandError as exc:
            raise AlchemyError(
                f"pytest-alchemy: Alembic cannot read the migrations of {self.description}: "
                f"{exc}\nFix: check script_location in {self.ini_path}."
            ) from None

    def fingerprint(self, dialect: Dialect) -> Fingerprint:
        scripts = self._scripts(self._config())
        try:
            paths = sorted(Path(script.path) for script in scripts.walk_revisions())
        except Exception as exc:
            raise AlchemyError(
                f"pytest-alchemy: Alembic cannot read the revisions of {self.description}: "
                f"{first_line(exc)}\nFix: correct the revision files, until 'alembic "
                "history' reads them."
            ) from None
        parts = [b"alembic", dialect.name.encode()]
        for path in [Path(scripts.env_py_location), *paths]:
            parts.append(path.name.encode())
            parts.append(path.read_bytes() if path.exists() else b"")
        return {"migrations": digest(parts)}

    # -- building -----------------------------------------------------------------------

    def build(self, engine: Engine, provisioner: Provisioner, test_url: URL) -> None:
        from alembic import command
        from alembic.runtime.migration import MigrationContext

        cfg = self._config(test_url)
        scripts = self._scripts(cfg)
        env_py = Path(scripts.env_py_location)
        with _logging_restored():
            try:
                with only_connections_to(test_url, provisioner), engine.begin() as conn:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
            except ForeignConnectionRefused as exc:
                raise AlchemyError(
                    f"pytest-alchemy: the Alembic env.py at {env_py} tried to connect to "
                    f"{exc.target}, not to the test database {test_url.database!r}. "
                    "It was stopped before it changed anything.\n"
                    'Fix: in env.py, use config.attributes.get("connection") when it is set, '
                    'or build the engine from config.get_main_option("sqlalchemy.url").'
                ) from None
            except AlchemyError:
                raise
            except Exception as exc:
                raise self._explain(exc, scripts, env_py) from None
            finally:
                cfg.attributes.pop("connection", None)
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
        heads = set(scripts.get_heads())
        if current != heads:
            raise AlchemyError(
                f"pytest-alchemy: after 'alembic upgrade head' the test database is at "
                f"{sorted(current) or 'no revision'}, not at head {sorted(heads)} "
                f"({self.description}).\nFix: check that env.py runs the migrations "
                "inside context.begin_transaction() on the connection it is given."
            )

    def _explain(self, exc: Exception, scripts: Any, env_py: Path) -> AlchemyError:
        revisions = {}
        for script in scripts.walk_revisions():
            revisions[os.path.realpath(script.path)] = script
        failing = None
        in_env_py = False
        for error in _chain(exc):
            for frame, _ in traceback.walk_tb(error.__traceback__):
                filename = os.path.realpath(frame.f_code.co_filename)
                if filename in revisions:
                    failing = revisions[filename]
                elif filename == os.path.realpath(env_py):
                    in_env_py = True
        reason = f"{type(exc).__name__}: {first_line(exc)}"
        if failing is not None:
            title = f" ({failing.doc})" if failing.doc else ""
            return AlchemyError(
                f"pytest-alchemy: migration {failing.revision}{title} in {failing.path} "
                f"failed: {reason}\nFix: correct that migration, or build from metadata "
                "with --alchemy-no-migrations."
            )
        where = f"the Alembic env.py at {env_py}" if in_env_py else self.description
        return AlchemyError(
            f"pytest-alchemy: 'alembic upgrade head' failed in {where}: {reason}\n"
            "Fix: correct it, or build from metadata with --alchemy-no-migrations."
        )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


@contextmanager
def _logging_restored() -> Iterator[None]:
    """Undo what env.py's ``fileConfig`` does to logging: levels, handlers, propagation
    and disabled flags of every logger, root included."""
    manager = logging.root.manager

    def snapshot() -> dict[str, logging.Logger]:
        found = {n: o for n, o in manager.loggerDict.items() if isinstance(o, logging.Logger)}
        found[""] = logging.getLogger()
        return found

    saved = {
        name: (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
        for name, logger in snapshot().items()
    }
    try:
        yield
    finally:
        for name, logger in snapshot().items():
            level, handlers, propagate, disabled = saved.get(
                name, (logging.NOTSET, [], True, False)
            )
            for handler in list(logger.handlers):
                if handler not in handlers:
                    logger.removeHandler(handler)
                    handler.close()
            for handler in handlers:
                if handler not in logger.handlers:
                    logger.addHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled
