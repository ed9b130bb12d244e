"""Test data factories bound to a test's session: factory_boy's ``SQLAlchemyModelFactory``
and polyfactory's ``SQLAlchemyFactory`` subclasses.

Works without pytest, and without either library installed: each is imported when a
factory is checked, and a library that is missing simply recognises nothing.

- :func:`load_factories` imports what ``alchemy_factories`` lines name
  (``package.module:Factory``, or ``package.module`` for every factory the module defines)
  and checks it.
- :class:`FactoryBinding` binds those factories to one session and gives back the undo:
  ``undo = FactoryBinding(factories).bind(session)``.

Binding sets, and the undo puts back exactly as it was (an attribute that was inherited
is inherited again):

- factory_boy: ``_meta.sqlalchemy_session`` to the session and
  ``_meta.sqlalchemy_session_factory`` to ``None`` (factory_boy would otherwise replace the
  session by one from the factory on every ``create``). ``sqlalchemy_session_persistence``
  keeps its meaning: ``"commit"`` commits the session, ``"flush"`` flushes it.
- polyfactory: ``__session__`` to the session (a ``scoped_session`` is bound as its current
  ``Session``: polyfactory would ``remove()`` a scoped session after every ``create_sync``),
  and ``__async_session__`` to the test's ``AsyncSession`` when one is given, else to
  ``None``, so that ``create_async`` cannot write through an asyncio session outside the
  test's transaction (polyfactory then raises its own configuration error).
  ``__persistence_method__`` / ``__async_persistence__`` keep their meaning.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sqlalchemy.orm import Session, scoped_session

from .._errors import SettingError, first_line
from .._settings import import_object

SETTING = "alchemy_factories"


@dataclass(frozen=True)
class _Library:
    """One factory library, as the messages name it and as it is imported."""

    name: str
    package: str
    module: str
    base: str
    pip: str

    def base_class(self) -> type | None:
        """The library's SQLAlchemy factory base class; ``None`` when not installed."""
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            return None
        base: type = getattr(module, self.base)
        return base


FACTORY_BOY = _Library(
    "factory_boy", "factory", "factory.alchemy", "SQLAlchemyModelFactory", "factory-boy"
)
POLYFACTORY = _Library(
    "polyfactory",
    "polyfactory",
    "polyfactory.factories.sqlalchemy_factory",
    "SQLAlchemyFactory",
    "polyfactory",
)
LIBRARIES = (FACTORY_BOY, POLYFACTORY)

_KINDS = "factory_boy SQLAlchemyModelFactory or polyfactory SQLAlchemyFactory subclass"
_WHAT = f"a {_KINDS}"
_LIST_FIX = (
    "Fix: list factory classes (package.module:UserFactory) or modules that define "
    "them (package.module), one a line."
)


def library_of(obj: object) -> _Library | None:
    """The library whose SQLAlchemy factory ``obj`` subclasses (the base classes
    themselves included); ``None`` for anything else."""
    if not isinstance(obj, type):
        return None
    for library in LIBRARIES:
        base = library.base_class()
        if base is not None and issubclass(obj, base):
            return library
    return None


def is_abstract(factory: type, library: _Library) -> bool:
    """Whether a factory makes no objects itself: factory_boy's abstract ones
    (``Meta.abstract``, or no ``Meta.model``) and polyfactory's base factories
    (``__is_base_factory__ = True`` in the class itself, as the library's own are)."""
    if library is FACTORY_BOY:
        return bool(getattr(factory, "_meta").abstract)  # noqa: B009 - a private name
    return bool(vars(factory).get("__is_base_factory__", False))


def check_factory(obj: object, subject: str) -> type:
    """``obj`` itself, when it is a factory class that can be bound.

    :param obj: the object to check.
    :param subject: how messages name it, e.g. ``"alchemy_factories entry 'app:F'"``.
    :returns: the factory class.
    :raises SettingError: ``obj`` is not a factory_boy ``SQLAlchemyModelFactory`` or
        polyfactory ``SQLAlchemyFactory`` subclass, or is an abstract / base one.
    """
    library = library_of(obj)
    if library is None or not isinstance(obj, type):
        if isinstance(obj, type):
            shown = f"the class {obj.__qualname__}"
        else:
            shown = f"a {type(obj).__name__}"
        raise SettingError(f"pytest-alchemy: {subject} is {shown}, not {_WHAT}.\n{_LIST_FIX}")
    if is_abstract(obj, library):
        kind = (
            "an abstract factory_boy factory (Meta.abstract, or no Meta.model)"
            if library is FACTORY_BOY
            else "a polyfactory base factory (__is_base_factory__ = True)"
        )
        raise SettingError(
            f"pytest-alchemy: {subject} is {kind}, which makes no objects.\n"
            "Fix: list the concrete factories that subclass it, or the module that "
            "defines them."
        )
    return obj


def load_factories(entries: Iterable[str], setting: str = SETTING) -> list[type]:
    """Import and check the factories that setting lines name, in order, each once.

    :param entries: ``package.module:Factory`` (dots after the colon walk attributes), or
        ``package.module``: every concrete factory class the module defines (not those it
        imports, not abstract or base factories).
    :param setting: the setting's name, for messages.
    :returns: the factory classes.
    :raises SettingError: an entry does not import, names something that is not a
        concrete factory, names a module that defines none, or needs a factory library
        that is not installed.
    """
    factories: list[type] = []
    for entry in entries:
        subject = f"{setting} entry {entry!r}"
        module_name, colon, _ = entry.partition(":")
        module = _import_module(module_name, entry, setting)
        if colon:
            found = [check_factory(import_object(entry, setting), subject)]
        else:
            found = _defined_in(module)
            if not found:
                raise SettingError(
                    f"pytest-alchemy: {subject}: the module defines no {_KINDS} (abstract "
                    "and base factories, and factories it imports, do not count).\n"
                    "Fix: name the module that defines the factories, or list them as "
                    "package.module:Factory."
                )
        factories.extend(f for f in found if f not in factories)
    return factories


def _import_module(module_name: str, entry: str, setting: str) -> ModuleType:
    if not module_name:  # ":Factory": import_object says what the form is
        import_object(entry, setting)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        for library in LIBRARIES:
            if missing == library.package and library.base_class() is None:
                raise SettingError(
                    f"pytest-alchemy: {setting} entry {entry!r}: importing {module_name!r} "
                    f"needs {library.name}, which is not installed.\n"
                    f"Fix: install it in the test environment (pip install {library.pip})."
                ) from None
        raise _import_failed(exc, module_name, entry, setting) from None
    except Exception as exc:
        raise _import_failed(exc, module_name, entry, setting) from None


def _import_failed(exc: Exception, module_name: str, entry: str, setting: str) -> SettingError:
    return SettingError(
        f"pytest-alchemy: {setting} = {entry!r}: importing {module_name!r} failed "
        f"({type(exc).__name__}: {first_line(exc).rstrip('.')}).\n"
        "Fix: check the module path, and that the application is installed or on "
        "pytest's pythonpath."
    )


def _defined_in(module: ModuleType) -> list[type]:
    """The concrete factory classes a module defines, in the order it defines them."""
    found = []
    for obj in vars(module).values():
        if not isinstance(obj, type) or obj.__module__ != module.__name__:
            continue
        library = library_of(obj)
        if library is not None and not is_abstract(obj, library):
            found.append(obj)
    return found


_MISSING = object()


class FactoryBinding:
    """Factories to bind to a session, test after test.

    :param factories: factory classes (checked with :func:`check_factory`; repeats are
        bound once).
    :param source: how messages name where they came from, e.g. ``"the
        alchemy_factories fixture"``; item ``i`` is named ``"<source>'s item i"``.
    :raises SettingError: one of them is not a concrete factory of either library.
    """

    def __init__(self, factories: Iterable[object], source: str = "the factory list") -> None:
        checked: list[tuple[type, _Library]] = []
        for index, obj in enumerate(factories, start=1):
            factory = check_factory(obj, f"{source}'s item {index} ({obj!r})")
            library = library_of(factory)
            assert library is not None  # checked above
            if all(factory is not seen for seen, _ in checked):
                checked.append((factory, library))
        self._factories = tuple(checked)

    @property
    def factories(self) -> Sequence[type]:
        """The factory classes, in order."""
        return tuple(factory for factory, _ in self._factories)

    def bind(
        self, session: Session | scoped_session[Any], async_session: Any = None
    ) -> Callable[[], None]:
        """Make every factory persist through ``session``.

        :param session: the session the factories' ``create`` calls add to (and, as
            each factory's persistence option says, flush or commit).
        :param async_session: the ``AsyncSession`` polyfactory's ``create_async`` uses
            (``__async_session__``); ``None`` leaves it unset, so that ``create_async``
            raises polyfactory's own configuration error rather than write through an
            application session outside the test's transaction.
        :returns: the undo: a function that puts back every attribute as it was before
            (safe to call more than once).
        """
        stack = ExitStack()
        try:
            for factory, library in self._factories:
                if library is FACTORY_BOY:
                    meta = getattr(factory, "_meta")  # noqa: B009 - a private name
                    _replace(stack, meta, "sqlalchemy_session_factory", None)
                    _replace(stack, meta, "sqlalchemy_session", session)
                else:
                    plain = session() if isinstance(session, scoped_session) else session
                    _replace(stack, factory, "__session__", plain)
                    _replace(stack, factory, "__async_session__", async_session)
        except BaseException:
            stack.close()
            raise
        return stack.close


def _replace(stack: ExitStack, target: object, name: str, value: object) -> None:
    """Set ``target.name`` to ``value``; on the stack's close, set it back, or delete it
    if ``target`` did not hold it itself (a class attribute it inherited)."""
    own = vars(target).get(name, _MISSING)
    setattr(target, name, value)

    def restore() -> None:
        if own is _MISSING:
            if name in vars(target):
                delattr(target, name)
        else:
            setattr(target, name, own)

    stack.callback(restore)
