"""Telling why ``alembic upgrade heads`` failed: the true cause (Alembic's configuration,
env.py, one migration, or the database's search_path), and a fix that fits it."""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from .._errors import AlchemyError, first_line

NO_MIGRATIONS = "or build from metadata with --alchemy-no-migrations"
#: SQLSTATE 3F000, "invalid schema name" (SQL standard; PostgreSQL raises it for "no schema
#: has been selected to create in" and for a schema that does not exist).
_INVALID_SCHEMA_NAME = "3F000"


def explain(
    exc: BaseException,
    *,
    action: str,
    scripts: Any,
    env_py: Path,
    config_shown: str,
    description: str,
    test_url: URL,
) -> AlchemyError:
    """One AlchemyError for ``exc``, raised while ``action`` ran Alembic."""
    reason = f"{type(exc).__name__}: {first_line(exc)}"
    if _sqlstate(exc) == _INVALID_SCHEMA_NAME:
        if "no schema has been selected" in reason:
            lacks = (
                "has none of the schemas its search_path names"
                f"{_search_path_source(test_url)}: a new database has only 'public'"
            )
        else:
            lacks = "lacks a schema that a statement names: a new database has only 'public'"
        return AlchemyError(
            f"pytest-alchemy: {action} failed: {reason}. The test database "
            f"{test_url.database!r} {lacks}.\n"
            "Fix: create them before the migrations run: in the alchemy_prepare_database "
            "hook (alchemy_prepare_database = package.module:function, which gets the "
            "connection), or in the first migration (op.execute('CREATE SCHEMA IF NOT "
            "EXISTS ...'))."
        )
    if isinstance(exc, AssertionError) and _innermost_function(exc) == "autocommit_block":
        return AlchemyError(
            f"pytest-alchemy: {action} failed: a migration's "
            "op.get_context().autocommit_block() found the connection in a transaction "
            f"that Alembic did not begin: the Alembic env.py at {env_py} began one itself "
            "(connection.begin(), or a statement before context.configure()).\n"
            "Fix: in env.py, let Alembic manage the transaction: context.configure("
            "connection=connection, ...) first, then run the migrations inside "
            "context.begin_transaction() (as 'alembic upgrade' needs too)."
        )
    revisions = _revisions(scripts)
    failing = None
    in_env_py = False
    for error in _chain(exc):
        for frame, _ in traceback.walk_tb(error.__traceback__):
            filename = os.path.realpath(frame.f_code.co_filename)
            if filename in revisions:
                failing = revisions[filename]
            elif filename == os.path.realpath(env_py):
                in_env_py = True
    if failing is not None:
        title = f" ({failing.doc})" if failing.doc else ""
        return AlchemyError(
            f"pytest-alchemy: migration {failing.revision}{title} in {failing.path} "
            f"failed: {reason}\nFix: correct that migration, {NO_MIGRATIONS}."
        )
    if _is_command_error(exc) and not _raised_in(exc, env_py):
        return AlchemyError(
            f"pytest-alchemy: {action} failed: Alembic refused the configuration in "
            f"{config_shown} ({description}): {reason}\nFix: correct the Alembic "
            "configuration or the revision files, until 'alembic upgrade heads' works "
            f"from the directory of that file, {NO_MIGRATIONS}."
        )
    if in_env_py:
        fix = "correct it"
        if isinstance(exc, ModuleNotFoundError):
            fix = (
                f"make the module importable: prepend_sys_path in {config_shown} (taken "
                "relative to that file) or pytest's pythonpath"
            )
        return AlchemyError(
            f"pytest-alchemy: {action} failed in the Alembic env.py at {env_py}: "
            f"{reason}\nFix: {fix}, {NO_MIGRATIONS}."
        )
    return AlchemyError(
        f"pytest-alchemy: {action} failed in {description}: {reason}\n"
        f"Fix: correct it, {NO_MIGRATIONS}."
    )


def _revisions(scripts: Any) -> dict[str, Any]:
    found = {}
    try:
        for script in scripts.walk_revisions():
            found[os.path.realpath(script.path)] = script
    except Exception:  # a broken revision graph: no file to blame by name
        return {}
    return found


def _sqlstate(exc: BaseException) -> str | None:
    for error in _chain(exc):
        orig = getattr(error, "orig", error)
        # psycopg 3 names it sqlstate, psycopg2 pgcode.
        for attribute in ("sqlstate", "pgcode"):
            code = getattr(orig, attribute, None)
            if isinstance(code, str):
                return code
    return None


def _is_command_error(exc: BaseException) -> bool:
    try:
        from alembic.util import CommandError
    except ImportError:  # pragma: no cover - Alembic is there when this runs
        return False
    return isinstance(exc, CommandError)


def _raised_in(exc: BaseException, path: Path) -> bool:
    """Whether the innermost frame of ``exc`` is in ``path`` (env.py's own raise)."""
    frames = list(traceback.walk_tb(exc.__traceback__))
    if not frames:
        return False
    return os.path.realpath(frames[-1][0].f_code.co_filename) == os.path.realpath(path)


def _innermost_function(exc: BaseException) -> str | None:
    frames = list(traceback.walk_tb(exc.__traceback__))
    return frames[-1][0].f_code.co_name if frames else None


def _search_path_source(url: URL) -> str:
    options = url.query.get("options")
    values = options if isinstance(options, tuple) else (options,)
    if any(value and "search_path" in value for value in values):
        return " (set by the options in the URL)"
    return ""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
