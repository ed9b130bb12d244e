"""psycopg's errors raised as asyncpg's exceptions (their class chosen by the SQLSTATE)."""

from __future__ import annotations

from typing import Any

from ._values import _asyncpg

#: asyncpg's error-field codes and psycopg's ``Diagnostic`` attribute for each.
_FIELDS = (
    ("S", "severity"),
    ("V", "severity_nonlocalized"),
    ("C", "sqlstate"),
    ("M", "message_primary"),
    ("D", "message_detail"),
    ("H", "message_hint"),
    ("P", "statement_position"),
    ("p", "internal_position"),
    ("q", "internal_query"),
    ("W", "context"),
    ("s", "schema_name"),
    ("t", "table_name"),
    ("c", "column_name"),
    ("d", "datatype_name"),
    ("n", "constraint_name"),
    ("F", "source_file"),
    ("L", "source_line"),
    ("R", "source_function"),
)


def _server_error(fields: dict[str, str], query: str | None) -> Exception:
    """asyncpg's exception for a server error (its class chosen by the SQLSTATE)."""
    asyncpg = _asyncpg()
    return asyncpg.PostgresError.new(fields, query=query)  # type: ignore[no-any-return]


def asyncpg_error(error: Exception, query: str | None = None) -> Exception:
    """The exception asyncpg raises where psycopg raised ``error`` (anything not
    psycopg's is returned as it is)."""
    asyncpg = _asyncpg()
    import psycopg

    if not isinstance(error, psycopg.Error):
        return error
    diag = error.diag
    if diag.sqlstate:
        fields = {
            code: str(value)
            for code, name in _FIELDS
            if (value := getattr(diag, name, None)) is not None
        }
        return _server_error(fields, query)
    exceptions = asyncpg.exceptions
    cls: type[Exception] = exceptions.InternalClientError
    if isinstance(error, psycopg.OperationalError):
        cls = exceptions.ConnectionDoesNotExistError
    elif isinstance(error, psycopg.DataError):
        cls = exceptions.DataError
    elif isinstance(error, (psycopg.InterfaceError, psycopg.ProgrammingError)):
        cls = exceptions.InterfaceError
    return cls(str(error))


def _result_error(result: Any, encoding: str, query: str | None) -> Exception:
    """asyncpg's exception for a failed libpq result."""
    fields = {}
    for code, _ in _FIELDS:
        value = result.error_field(ord(code))
        if value is not None:
            fields[code] = bytes(value).decode(encoding, "replace")
    return _server_error(fields, query)


def _interface_error(message: str) -> Exception:
    asyncpg = _asyncpg()
    return asyncpg.exceptions.InterfaceError(message)  # type: ignore[no-any-return]


def _count_error(expected: int, passed: int) -> Exception:
    return _interface_error(
        f"the server expects {expected} argument{'s' if expected != 1 else ''} for this "
        f"query, {passed} {'were' if passed != 1 else 'was'} passed"
    )
