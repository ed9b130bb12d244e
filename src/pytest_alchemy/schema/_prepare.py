"""The prepare hook: a callable run on a new test database, in its own committed
transaction, before any schema source builds (extensions, server objects)."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, Connection, Engine

from .._errors import AlchemyError, first_line
from ..provision import Provisioner
from ._guard import ForeignConnectionRefused, only_connections_to
from ._imports import own_sources
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
        """A digest of the function's module: its qualified name, its source, the source
        of the module that defines it and of the project's own modules that module
        imports, transitively (as Alembic's "imported modules" part, see ``_imports``).
        A ``functools.partial`` is fingerprinted by the function it wraps plus its
        arguments (when their ``repr`` is stable: no memory address), a callable object
        by its class. What the function reads at run time otherwise (files, the
        environment) is not seen."""
        target, arguments = _underlying(self.function)
        try:
            source = inspect.getsource(target)  # type: ignore[arg-type]
        except (OSError, TypeError):
            source = ""
        parts = [b"prepare", qualified_name(target).encode(), arguments.encode()]
        parts.append(source.encode())
        module = sys.modules.get(getattr(target, "__module__", None) or "")
        file = getattr(module, "__file__", None)
        if file and str(file).endswith(".py") and Path(file).is_file():
            path = Path(file)
            parts.extend([b"module", path.read_bytes()])
            package = getattr(module, "__package__", None) or None
            parts.extend(own_sources([path], list(sys.path), package=package))
        return digest(parts)

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


def _underlying(function: object) -> tuple[object, str]:
    """The function or class whose source defines ``function``, and the ``repr`` of
    the arguments partials add (``"unstable"`` when a repr holds a memory address)."""
    arguments: list[str] = []
    while isinstance(function, functools.partial):
        shown = repr((function.args, sorted(function.keywords.items())))
        arguments.append("unstable" if " at 0x" in shown else shown)
        function = function.func
    plain = inspect.isroutine(function) or inspect.isclass(function)
    if not plain:  # a callable object: its class holds the code
        function = type(function)
    return function, "\n".join(arguments)


def qualified_name(function: object) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or repr(function)
    return f"{module}:{name}" if module else str(name)


def no_prepare_fingerprint() -> str:
    return digest([b"prepare", b"none"])
