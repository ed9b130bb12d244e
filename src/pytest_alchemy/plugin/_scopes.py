"""Which pytest scope the code running now belongs to.

pytest sets up a test's fixtures in scope order and, before the next test, tears down
the narrower scopes that test does not share; so scopes nest, and each gets a layer of
its own in the shared connection (see :mod:`pytest_alchemy.isolation`). The hooks here
tell the ledger where statements run: in the setup of a fixture, its scope's node (the
session, a package, a module, a class or the test); in a test's call and teardown, the
test; elsewhere, the session.
"""

from __future__ import annotations

import threading
import weakref
from contextvars import Token
from dataclasses import dataclass

import pytest

from ..isolation import Context, Scope
from ..isolation._scope import ORIGIN

#: A pytest collection node (pytest does not export its base class).
Node = pytest.Item | pytest.Collector

#: pytest nodes that are scopes of fixtures (a class-scoped fixture outside a class
#: belongs to the test; pytest's ``SubRequest.node`` says so).
_SCOPE_NODES = (pytest.Package, pytest.Module, pytest.Class, pytest.Item)


@dataclass
class _Frame:
    node: Node | None
    who: str
    ending: Scope | None = None
    fixture: str | None = None
    context: Context | None = None
    #: The token that puts back the ORIGIN context variable.
    origin: Token[Scope | None] | None = None


class ScopeTracker:
    """The stack of scopes pytest is in, and their :class:`Scope` objects."""

    def __init__(self) -> None:
        self.root = Scope("the pytest session")
        self._stack: list[_Frame] = [_Frame(None, "a session-scoped fixture")]
        self._scopes: dict[Node, Scope] = {}
        #: The scope each thread was first seen in (threads started in it, mostly).
        self._threads: weakref.WeakKeyDictionary[threading.Thread, Scope] = (
            weakref.WeakKeyDictionary()
        )

    def _note_threads(self) -> None:
        """Threads not seen before were started in the scope pytest is in now."""
        new = [thread for thread in threading.enumerate() if thread not in self._threads]
        if new:
            scope = self.current().scope
            for thread in new:
                self._threads[thread] = scope

    def thread_origin(self, thread: threading.Thread) -> Scope | None:
        """The scope ``thread`` was started in (as far as the hooks saw), or ``None``."""
        return self._threads.get(thread)

    def push(
        self, node: Node, who: str, *, ending: Scope | None = None, fixture: str | None = None
    ) -> None:
        self._note_threads()
        frame = _Frame(node, who, ending, fixture)
        # Bound now: a statement made for this frame after its scope ended (a reporting
        # hook) finds that scope ended, not a fresh one.
        frame.context = Context(self.scope(node), who, fixture, ending)
        frame.origin = ORIGIN.set(frame.context.scope)
        self._stack.append(frame)

    def pop(self) -> None:
        self._note_threads()
        frame = self._stack.pop()
        if frame.origin is not None:
            try:
                ORIGIN.reset(frame.origin)
            except ValueError:  # set in another context: put its old value back
                ORIGIN.set(frame.origin.old_value or None)

    def current(self) -> Context:
        """Where statements run now (for the ledger)."""
        frame = self._stack[-1]
        if frame.context is None:
            frame.context = Context(self.scope(frame.node), frame.who, frame.fixture, frame.ending)
        return frame.context

    def scope(self, node: Node | None) -> Scope:
        if node is None or isinstance(node, pytest.Session):
            return self.root
        scope = self._scopes.get(node)
        if scope is None:
            parent = self.root
            for ancestor in node.listchain()[:-1]:
                if isinstance(ancestor, _SCOPE_NODES):
                    parent = self.scope(ancestor)
            scope = Scope(_describe(node), parent)
            self._scopes[node] = scope
        return scope

    def ending(self, item: pytest.Item, nextitem: pytest.Item | None) -> list[Scope]:
        """The scopes that end with ``item``'s teardown, innermost first."""
        keep = set(nextitem.listchain()) if nextitem is not None else set()
        ended = []
        for node in reversed(item.listchain()):
            if node in keep:
                break
            if isinstance(node, _SCOPE_NODES):
                ended.append(self.scope(node))
        return ended

    @property
    def tearing_down(self) -> bool:
        """Whether pytest is in a test's teardown (where ended scopes are handled)."""
        return self._stack[-1].ending is not None

    def existing(self, node: Node) -> Scope | None:
        return self._scopes.get(node)

    def forget(self, scopes: list[Scope]) -> None:
        """Ended scopes: their nodes get new scopes if pytest sets them up again (a
        package whose modules pytest-randomly spread out, a rerun)."""
        for node in [n for n, s in self._scopes.items() if s in scopes]:
            del self._scopes[node]

    def lost_for(self, item: pytest.Item) -> str | None:
        """Why ``item`` cannot run as written: rows that fixtures it uses wrote in a wider
        scope were lost when another test broke isolation."""
        names = set(getattr(item, "fixturenames", ()))  # pytest.Function has them
        for scope in (self.root, *(self._scopes[n] for n in item.listchain() if n in self._scopes)):
            if scope.lost is not None and names & scope.lost_fixtures:
                return scope.lost
        return None


def _describe(node: Node) -> str:
    if isinstance(node, pytest.Item):
        return f"test {node.nodeid}"
    kind = type(node).__name__.lower()
    return f"{kind} {node.nodeid or node.name}"


def fixture_label(scope: str, name: str) -> str:
    return f"{scope}-scoped fixture {name!r}" if scope != "function" else f"fixture {name!r}"
