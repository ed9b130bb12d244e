"""What the ledger keeps track of: scopes (where statements run), the savepoints on the
shared connection, and the layers that tie a scope to its savepoint."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


class Scope:
    """Where statements run: a pytest node (or any unit of work) with its parents.

    ``parent`` is ``None`` for the root (the pytest session). A scope is ``alive`` until
    :meth:`Ledger.end_scope`; a scope whose rows were lost to a breach carries the reason
    in ``lost``.
    """

    def __init__(self, label: str, parent: Scope | None = None) -> None:
        self.label = label
        self.parent = parent
        self.alive = True
        self.lost: str | None = None
        #: The fixtures whose rows in this scope were lost (``None``: code that is no
        #: fixture wrote too, so every user of the scope is told).
        self.lost_fixtures: frozenset[str | None] = frozenset()
        self.chain: tuple[Scope, ...] = (*parent.chain, self) if parent is not None else ()

    def __repr__(self) -> str:
        return f"<Scope {self.label}>"


#: The scope the code running now was started in, as a context variable: asyncio tasks
#: (and threads started with the context copied, as anyio's ``to_thread`` does) carry
#: the value of the code that created them, so a task that outlives the test that
#: started it is known for one when it asks for a connection.
ORIGIN: ContextVar[Scope | None] = ContextVar("pytest_alchemy_origin", default=None)


@dataclass(eq=False)
class Entry:
    """One savepoint on the shared connection."""

    name: str
    #: A :class:`Layer`, a transaction of a routed connection, or ``None`` (a spare
    #: layer savepoint, kept after its rollback for the next scope at this depth).
    owner: Any
    #: Owners whose statements that may write ran in this savepoint's region (merged in
    #: from savepoints released above it).
    writers: set[Any] = field(default_factory=set)
    #: Released by its owner; released for real once nothing open sits above it.
    waiting: bool = False
    #: A rollback of its owner's was refused (the driver believes it done): carried out
    #: as soon as it undoes nothing but its owner's work.
    rollback_pending: bool = False


@dataclass(eq=False)
class Layer:
    scope: Scope
    entry: Entry
    #: What opened it, for messages: "module-scoped fixture 'rows'".
    opener: str

    @property
    def label(self) -> str:
        return self.opener


@dataclass(frozen=True)
class Context:
    """The innermost scope statements run in now, and who runs them (for messages)."""

    scope: Scope
    who: str
    #: The fixture being set up, if any.
    fixture: str | None = None
    #: The outermost scope being torn down now, if any: what lies above its layer is
    #: about to be undone.
    ending: Scope | None = None
