"""The schema from Alembic migrations: ``alembic upgrade heads`` on the test database, run
as the ``alembic`` command runs it (see _alembic_config for how the configuration is
found), and its fingerprint."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, Dialect, Engine

from .._errors import AlchemyError, first_line
from ..provision import Provisioner
from ._alembic_config import (
    AlembicFiles,
    config_bytes,
    find_files,
    make_config,
    sys_path_restored,
)
from ._alembic_errors import explain
from ._guard import ForeignConnectionRefused, only_connections_to
from ._imports import own_sources
from ._source import Fingerprint, digest, libraries

UPGRADE = "'alembic upgrade heads'"


class AlembicSchema:
    """``alembic upgrade heads`` on the test database, as the ``alembic`` command runs it.

    env.py gets a connection it manages (``engine.connect()``, in
    ``config.attributes["connection"]``), so that ``context.begin_transaction()``,
    ``transaction_per_migration=True`` and ``op.get_context().autocommit_block()`` behave
    as under ``alembic upgrade``; whatever env.py leaves open is committed afterwards.
    Then env.py runs once more, as under ``alembic current``, to read the revisions the
    database is at through Alembic's own API with env.py's options (``version_table``,
    ``version_table_schema``): every head must be one of them or their ancestor
    (through ``down_revision`` or ``depends_on``, Alembic's "effective head"). While
    env.py runs, any connection to another database is refused (see
    ``only_connections_to``).

    ``ini_path`` is an ``alembic.ini``, a ``pyproject.toml`` with ``[tool.alembic]``
    (Alembic >= 1.16) or a directory holding either; see ``_alembic_config`` for the
    rule. Errors are AlchemyError / SettingError naming the file, env.py or migration at
    fault. Relies on https://alembic.sqlalchemy.org/en/latest/cookbook.html#connection-sharing
    and https://alembic.sqlalchemy.org/en/latest/api/runtime.html.
    """

    def __init__(self, ini_path: Path, description: str) -> None:
        self.ini_path = ini_path
        self.description = description

    # -- alembic objects ----------------------------------------------------------------

    def _files(self) -> AlembicFiles:
        return find_files(self.ini_path, self.description)

    def _config(self, url: URL | None = None) -> Any:
        return make_config(self._files(), self.description, url)

    def _scripts(self, cfg: Any) -> Any:
        from alembic.script import ScriptDirectory
        from alembic.util import CommandError

        try:
            return ScriptDirectory.from_config(cfg)
        except CommandError as exc:
            raise AlchemyError(
                f"pytest-alchemy: Alembic cannot read the migrations of {self.description}: "
                f"{exc}\nFix: check script_location in "
                f"{cfg.pytest_alchemy_files.shown()}."
            ) from None

    def _revision_paths(self, scripts: Any) -> list[Path]:
        try:
            return sorted(Path(script.path) for script in scripts.walk_revisions())
        except Exception as exc:
            raise AlchemyError(
                f"pytest-alchemy: Alembic cannot read the revisions of {self.description}: "
                f"{first_line(exc)}\nFix: correct the revision files, until 'alembic "
                "history' reads them."
            ) from None

    def fingerprint(self, dialect: Dialect) -> Fingerprint:
        """Named parts: "migrations" (every file under the script location and the
        version locations: revision scripts and the data files they read, not env.py,
        ``__pycache__`` nor ``*.pyc``), "env.py", "alembic config" (the ini without
        ``sqlalchemy.url``, and the ``[tool.alembic]`` table), "imported modules" (the
        source of the project's own modules that env.py and the migrations import,
        transitively; found with ``ast`` and resolved without importing, on
        ``sys.path`` plus ``prepend_sys_path``) and "libraries" (SQLAlchemy and Alembic
        versions)."""
        with sys_path_restored() as search_path:
            cfg = self._config()
            scripts = self._scripts(cfg)  # prepends prepend_sys_path to sys.path
            revisions = self._revision_paths(scripts)
            env_py = Path(scripts.env_py_location)
            modules = own_sources([env_py, *revisions], list(search_path))
        migrations = [b"migrations", dialect.name.encode()]
        for name, content in _migration_files(scripts, revisions, env_py):
            migrations.extend([name.encode(), content])
        imported = [b"imported modules", *modules]
        return {
            "migrations": digest(migrations),
            "env.py": digest([env_py.read_bytes() if env_py.is_file() else b""]),
            "alembic config": digest(config_bytes(cfg)),
            "imported modules": digest(imported),
            "libraries": libraries("alembic"),
        }

    # -- building -----------------------------------------------------------------------

    def build(self, engine: Engine, provisioner: Provisioner, test_url: URL) -> None:
        from alembic import command
        from alembic.runtime.environment import EnvironmentContext

        current: set[str] = set()

        def read_current(rev: Any, context: Any) -> list[Any]:
            current.update(context.get_current_heads())
            return []

        with sys_path_restored(), _logging_restored():
            cfg = self._config(test_url)
            scripts = self._scripts(cfg)
            env_url = _env_url(Path(scripts.env_py_location), test_url, self.description)
            if env_url is not test_url:
                cfg = self._config(env_url)
                scripts = self._scripts(cfg)
            self._run(
                cfg,
                scripts,
                engine,
                provisioner,
                test_url,
                UPGRADE,
                lambda: command.upgrade(cfg, "heads"),
            )

            def read() -> None:
                with EnvironmentContext(cfg, scripts, fn=read_current, dont_mutate=True):
                    scripts.run_env()

            self._run(cfg, scripts, engine, provisioner, test_url, "'alembic current'", read)
        heads = set(scripts.get_heads())
        missing = heads - _reached(scripts, current)
        if missing:
            raise AlchemyError(
                f"pytest-alchemy: after {UPGRADE} the test database is at "
                f"{sorted(current) or 'no revision'}, which does not reach the heads "
                f"{sorted(missing)} "
                f"({self.description}).\nFix: check that env.py runs the migrations on "
                'the connection in config.attributes["connection"], and the same way '
                "each time it runs."
            )

    def _run(
        self,
        cfg: Any,
        scripts: Any,
        engine: Engine,
        provisioner: Provisioner,
        test_url: URL,
        action: str,
        run: Callable[[], None],
    ) -> None:
        """Run env.py through ``run`` on a fresh connection of ``engine`` that env.py
        manages, committing what it leaves open; under the guard."""
        env_py = Path(scripts.env_py_location)
        try:
            with only_connections_to(test_url, provisioner), engine.connect() as conn:
                cfg.attributes["connection"] = conn
                run()
                if not conn.closed and conn.in_transaction():
                    conn.commit()
        except ForeignConnectionRefused as exc:
            raise AlchemyError(
                f"pytest-alchemy: the Alembic env.py at {env_py} tried to connect to "
                f"{exc.target}, not to the test database {test_url.database!r}. "
                "It was stopped before it changed anything.\n"
                'Fix: in env.py, use config.attributes.get("connection") when it is set, '
                'or build the engine from config.get_main_option("sqlalchemy.url"); or, '
                "if env.py reads its URL from an environment variable, name it in "
                "alchemy_url_env (alchemy_async_url_env for an async URL)."
            ) from None
        except AlchemyError:
            raise
        except Exception as exc:
            raise explain(
                exc,
                action=action,
                scripts=scripts,
                env_py=env_py,
                config_shown=cfg.pytest_alchemy_files.shown(),
                description=self.description,
                test_url=test_url,
            ) from None
        finally:
            cfg.attributes.pop("connection", None)


def _env_url(env_py: Path, test_url: URL, description: str) -> URL:
    """The URL env.py gets in ``sqlalchemy.url``: the test database's, with the async
    driver over its sync one when env.py makes an async engine of its own (Alembic's
    ``alembic init -t async`` template: ``async_engine_from_config``), as that template
    ignores ``config.attributes["connection"]``. Raises SettingError naming the pip extra
    when that async driver is not installed."""
    from ..isolation._asyncio import async_url

    try:
        text = env_py.read_text(encoding="utf-8")
    except OSError:
        return test_url
    if "async_engine_from_config" not in text and "create_async_engine" not in text:
        return test_url
    return async_url(test_url, f"the async env.py of {description}")


def _migration_files(scripts: Any, revisions: list[Path], env_py: Path) -> list[tuple[str, bytes]]:
    """(name, content) of every revision script and every file under the script location
    and the version locations (data files migrations read), but env.py (its own part),
    ``__pycache__``, ``*.pyc`` and hidden entries; named relative to their directory, so that the
    project may move. Sorted."""
    roots = [Path(scripts.dir), *(Path(p) for p in scripts._version_locations)]
    found: dict[str, bytes] = {}
    skip = env_py.resolve()
    for index, root in enumerate(roots):
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            relative = path.relative_to(root)
            if _skipped(relative) or not path.is_file():
                continue
            if path.resolve() == skip:
                continue
            found.setdefault(f"{index}/{relative.as_posix()}", path.read_bytes())
    for path in revisions:  # a revision outside those directories (a package resource)
        found.setdefault(f"revision/{path.name}", path.read_bytes())
    return sorted(found.items())


def _skipped(relative: Path) -> bool:
    """Bytecode and hidden entries (editor swap files, tool caches): not the project's."""
    hidden = any(part.startswith(".") for part in relative.parts)
    return hidden or "__pycache__" in relative.parts or relative.suffix == ".pyc"


def _reached(scripts: Any, current: set[str]) -> set[str]:
    """The revisions the database has applied: those in its version table and all their
    ancestors, through ``down_revision`` and ``depends_on`` (``alembic current`` calls a
    head reached this way an "effective head"; ``upgrade heads`` stores only the
    dependent one). See ``ScriptDirectory.iterate_revisions``."""
    if not current:
        return set()
    try:
        found = scripts.iterate_revisions(tuple(sorted(current)), "base")
        return {script.revision for script in found} | current
    except Exception:  # a revision in the table that the scripts do not know: not reached
        return set(current)


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
