"""The prepare hook: a callable run on a new test database, in its own committed
transaction, before any schema source builds (extensions, server objects)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import URL, Connection, Engine

from .._errors import AlchemyError, first_line
from ..provision import Provisioner
from ._guard import ForeignConnectionRefused, only_connections_to
from ._source import digest

#: ``prepare(connection) -> None``.
PrepareFunction = Callable[[Connection], None]


@dataclass(frozen=True)
class PrepareHook:
    """A prepare function and where it was configured (for messages)."""

    function: PrepareFunction
    #: The setting, e.g. ``alchemy_prepare_database = app.db:prepare``.
    description: str

    @property
    def name(self) -> str:
        return qualified_name(self.function)

    def fingerprint(self) -> str:
        """A digest of the function's source (its qualified name when the source cannot
        be read: a builtin, a ``functools.partial``...). Functions it calls are not
        followed."""
        try:
            source = inspect.getsource(self.function)
        except (OSError, TypeError):
            source = ""
        return digest([b"prepare", self.name.encode(), source.encode()])

    def run(self, engine: Engine, provisioner: Provisioner, test_url: URL) -> None:
        """Call the function on a connection to the test database in a transaction that
        is committed when it returns; any connection to another database is refused."""
        try:
            with only_connections_to(test_url, provisioner), engine.begin() as conn:
                self.function(conn)
        except ForeignConnectionRefused as exc:
            raise AlchemyError(
                f"pytest-alchemy: the prepare hook {self.name} ({self.description}) tried "
                f"to connect to {exc.target}, not to the test database "
                f"{test_url.database!r}; it was stopped.\nFix: use the connection it is "
                "given; it is on the test database."
            ) from None
        except Exception as exc:
            raise AlchemyError(
                f"pytest-alchemy: the prepare hook {self.name} ({self.description}) failed "
                f"on the new test database: {type(exc).__name__}: {first_line(exc)}\n"
                "Fix: correct that function (it is called as prepare(connection) once, "
                "before the schema is built), or unset alchemy_prepare_database."
            ) from None


def qualified_name(function: object) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or repr(function)
    return f"{module}:{name}" if module else str(name)


def no_prepare_fingerprint() -> str:
    return digest([b"prepare", b"none"])
