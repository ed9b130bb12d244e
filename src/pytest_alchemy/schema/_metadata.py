"""The schema from SQLAlchemy metadata: ``MetaData.create_all``, after the schemas its
tables live in; fingerprinted by the DDL ``create_all`` emits, captured, not re-derived."""

from __future__ import annotations

import json
import os
import re
import secrets
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Sequence
from sqlalchemy.engine import URL, Dialect, Engine
from sqlalchemy.engine.mock import MockConnection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.sqltypes import SchemaType

from .._errors import AlchemyError, first_line
from ..provision import Provisioner
from ._source import UNCAPTURED, Fingerprint, digest

#: Server objects a table refers to that ``create_all`` does not create.
_MISSING_OBJECT = re.compile(
    r'\b(type|schema|extension|function|operator class)\s+"?([^"\s]+)"?'
    r"\s+does not exist",
    re.IGNORECASE,
)


#: Paths of library code, skipped when naming the listener that could not be captured.
_LIBRARY_PARTS = (f"{os.sep}sqlalchemy{os.sep}", f"{os.sep}pytest_alchemy{os.sep}")


class MetadataSchema:
    """``MetaData.create_all``, after creating the schemas its tables, sequences and
    types name (``Table(schema=...)``, ``MetaData(schema=...)``)."""

    def __init__(self, metadata: MetaData, description: str) -> None:
        self.metadata = metadata
        self.description = description
        #: Parts that could not be fingerprinted, with why (see :data:`UNCAPTURED`).
        self.uncaptured: dict[str, str] = {}

    # -- fingerprint ----------------------------------------------------------------------

    def fingerprint(self, dialect: Dialect) -> Fingerprint:
        """The digest of the DDL that ``create_all`` emits on ``dialect``: every statement
        it executes (tables, indexes, PostgreSQL types, sequences, comments, and whatever
        ``before_create`` / ``after_create`` event listeners execute), captured on a mock
        connection (SQLAlchemy "How can I get the CREATE TABLE/ DROP TABLE output as a
        string?", ``create_mock_engine``) and compiled by ``dialect``.

        ``dialect`` should be initialised by a connection to the server (MariaDB or
        MySQL, server version), as the real ``create_all`` would see it. A listener that
        needs a live connection (it reads from it) cannot be captured: the part is then
        unique to this run, so a reused database is rebuilt rather than trusted.
        """
        statements = _capture_ddl(self.metadata, dialect, self.description)
        if isinstance(statements, str):
            self.uncaptured = {"metadata": statements}
            return {"metadata": f"{UNCAPTURED}{secrets.token_hex(4)}"}
        self.uncaptured = {}
        # create_all walks each table's indexes as a set, in no fixed order: sort.
        return {"metadata": digest([b"metadata", dialect.name.encode(), *sorted(statements)])}

    # -- building -------------------------------------------------------------------------

    def schemas(self) -> dict[str, list[str]]:
        """The schemas the metadata names, each with what lives there (for messages)."""
        found: dict[str, set[str]] = {}

        def add(schema: str | None, what: str) -> None:
            if schema:
                found.setdefault(schema, set()).add(what)

        for table in self.metadata.sorted_tables:
            add(table.schema, table.fullname)
            for column in table.columns:
                kind = column.type
                if isinstance(kind, SchemaType) and getattr(kind, "name", None):
                    schema = getattr(kind, "schema", None)
                    add(schema, f"type {schema}.{getattr(kind, 'name', '')}")
                if isinstance(column.default, Sequence):
                    sequence = column.default
                    add(sequence.schema, f"sequence {sequence.schema}.{sequence.name}")
        for sequence in self.metadata._sequences.values():
            add(sequence.schema, f"sequence {sequence.schema}.{sequence.name}")
        return {name: sorted(items) for name, items in sorted(found.items())}

    def build(self, engine: Engine, provisioner: Provisioner, test_url: URL) -> None:
        schemas = self.schemas()
        try:
            with engine.begin() as conn:
                if schemas:
                    try:
                        provisioner.create_schemas(conn, list(schemas))
                    except AlchemyError as exc:
                        raise _naming_tables(exc, schemas, self.description) from None
                self.metadata.create_all(conn)
        except SQLAlchemyError as exc:
            raise AlchemyError(
                f"pytest-alchemy: creating the tables of {self.description} failed: "
                f"{first_line(exc)}\nFix: {_fix_for(first_line(exc))}"
            ) from None


def _fix_for(reason: str) -> str:
    missing = _MISSING_OBJECT.search(reason)
    if missing is not None:
        kind, name = missing.group(1).lower(), missing.group(2)
        return (
            f"the {kind} {name} is not made by create_all; create it before the tables "
            "in a prepare hook (alchemy_prepare_database = package.module:function, "
            "e.g. CREATE EXTENSION IF NOT EXISTS for a type from an extension)."
        )
    return (
        "correct the metadata, or create the server objects it relies on in a prepare "
        "hook (alchemy_prepare_database = package.module:function)."
    )


def _naming_tables(
    exc: AlchemyError, schemas: Mapping[str, list[str]], description: str
) -> AlchemyError:
    what, _, fix = str(exc).partition("\nFix: ")
    held = ", ".join(item for items in schemas.values() for item in items)
    return AlchemyError(f"{what.rstrip('.')} ({description} puts there: {held}).\nFix: {fix}")


class _CapturingConnection(MockConnection):
    """A mock connection that also takes ``exec_driver_sql``, as listeners may call it."""

    def exec_driver_sql(self, statement: str, parameters: Any = None, *args: Any) -> Any:
        return self._execute_impl(statement, parameters)


def _capture_ddl(metadata: MetaData, dialect: Dialect, description: str) -> list[bytes] | str:
    """The statements ``create_all`` executes, or why they cannot be captured."""
    statements: list[bytes] = []

    def record(element: Any, parameters: Any = None) -> None:
        if isinstance(element, str):
            text = element
        elif isinstance(element, Executable) or hasattr(element, "compile"):
            text = str(element.compile(dialect=dialect))
        else:
            text = repr(element)
        if parameters:
            text += "\n" + json.dumps(parameters, sort_keys=True, default=repr)
        statements.append(text.strip().encode())

    connection = _CapturingConnection(dialect, record)
    try:
        metadata.create_all(connection, checkfirst=False)
    except SQLAlchemyError as exc:
        raise AlchemyError(
            f"pytest-alchemy: the schema of {description} cannot be compiled for "
            f"{dialect.name}: {first_line(exc)}\n"
            "Fix: use column types that this database supports."
        ) from None
    except Exception as exc:  # a listener needing a live connection: not capturable offline
        return f"{_listener_of(exc)} needs a live connection ({type(exc).__name__}: {exc})"
    return statements


def _listener_of(exc: BaseException) -> str:
    """The innermost frame of the project's own code in ``exc``'s traceback, in words:
    the event listener that failed on the mock connection."""
    where = "an event listener"
    for frame, line in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if not any(part in filename for part in _LIBRARY_PARTS):
            where = f"the listener {frame.f_code.co_name}() at {Path(filename).name}:{line}"
    return where
