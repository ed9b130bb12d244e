"""The shared connection and its ledger of savepoints.

One real database connection, with one outer transaction that is never committed, serves
every routed engine. On it, each *scope* (a pytest session, package, module, class or
test: anything with a parent chain) gets a savepoint of its own, its *layer*, opened on
the first statement run inside it and rolled back when it ends; each transaction of a
routed connection is a savepoint above the layer it began in.

Production connections are independent; here each savepoint is nested in those opened
before it. The ledger ends them in an order the database accepts: a commit waits while a
later transaction is still open, and a rollback is real whenever it undoes nothing but
its own transaction's work. Where it would undo another transaction's work (a later
commit, or statements of another connection run while it was the innermost), it is
allowed as a release only when its own statements only read; otherwise it is refused
with :class:`IsolationError`. Nothing is ever committed for real.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NoReturn

from .._errors import IsolationError
from ._drivers import Driver
from ._gate import ThreadGate
from ._messages import after_the_end, misnested, refusal, short_sql
from ._scope import Context, Entry, Layer, Scope
from ._shared import ROOT, SharedConnection

#: Returned by :meth:`Ledger.rollback` when the rollback was carried out as a release.
#: Set while a refusal must not be raised where it happens (an async front's rollback:
#: SQLAlchemy runs it in a task of its own, where an exception on its way out of the
#: application's ``async with`` cannot be seen): it is reported when the test ends.
DEFER_REFUSALS: ContextVar[bool] = ContextVar("pytest_alchemy_defer_refusals", default=False)


@contextmanager
def refusals_deferred() -> Iterator[None]:
    """Within: a refused rollback is reported at the end of the test, not raised."""
    token = DEFER_REFUSALS.set(True)
    try:
        yield
    finally:
        DEFER_REFUSALS.reset(token)


RELEASED = "released"
#: Returned by :meth:`Ledger.rollback` when the rollback waits until it undoes nothing
#: but its owner's work (the owner's transaction is over for its connection).
PENDING = "pending"


class Ledger:
    """The shared connection, its savepoints and the scopes' layers.

    ``connect`` returns the real (pooled) connection; it is called on first use and after
    a breach. ``context`` tells the scope statements run in now. ``on_breach`` is told
    when the database ended the outer transaction by itself. ``gate`` (one of its own
    by default) gives threads their turns between writing transactions.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        driver: Driver,
        *,
        root: Scope,
        context: Callable[[], Context],
        on_breach: Callable[[str], None] = lambda reason: None,
        home_thread: threading.Thread | None = None,
        lock_timeout: float = 10.0,
        thread_origin: Callable[[threading.Thread], Scope | None] = lambda thread: None,
        gate: ThreadGate | None = None,
    ) -> None:
        self.shared = SharedConnection(connect, driver, lock_timeout)
        self.driver = driver
        self.root = root
        self.context = context
        self.on_breach = on_breach
        self.home_thread = home_thread or threading.current_thread()
        #: The scope a thread was started in, if known (see VirtualConnection.checked_out).
        self.thread_origin = thread_origin
        #: Serialises every use of the driver connection, from any thread.
        self.mutex = threading.RLock()
        #: Threads' turns between writing transactions.
        #: Shared by the ledgers of one run (one per bind): a thread's turn covers its
        #: writing transactions on every one, as pooled connections would not wait on
        #: each other across databases.
        self.gate = gate or ThreadGate(self.home_thread, lock_timeout)
        self.entries: list[Entry] = []
        self.layers: list[Layer] = []
        self._base_writers: set[Any] = set()
        self._names = itertools.count(1)
        self._ensured: tuple[Context, int] | None = None
        #: Isolation problems found while an exception was already on its way out (so
        #: as not to replace it); the pytest layer reports them after the test.
        self.deferred: list[IsolationError] = []
        #: Open transactions of routed connections (for ending them with their scope).
        self.transactions: set[Any] = set()
        #: Rollbacks refused on a close or a pool's reset, with their errors: reported
        #: only if a statement runs while they still wait (otherwise nothing saw it).
        self._unobserved: list[tuple[Entry, IsolationError]] = []
        #: The last statement that could end the transaction by itself (a CALL), and who
        #: ran it: named when a breach is found later.
        self.suspect: tuple[str, str] | None = None
        #: Per scope, the fixtures (``None``: other code) that wrote in it.
        self._written_by: dict[Scope, set[str | None]] = {}

    # -- the real connection -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.shared.connected

    def dbapi(self) -> Any:
        """The driver connection, in the run's transaction (connected on first use)."""
        return self.shared.dbapi()

    def execute(self, sql: str) -> None:
        """Run plugin SQL (savepoints) on the real connection. A savepoint of the
        plugin's that no longer exists means the transaction ended behind its back."""
        try:
            self.shared.run(sql)
        except Exception as exc:
            if self.driver.savepoint_missing(exc):
                self._breach(self._gone(sql))
            raise
        self.check_breach(sql)

    def _gone(self, sql: str) -> str:
        suspect = (
            f"; the last statement that could do that was {short_sql(self.suspect[0])!r} "
            f"in {self.suspect[1]}"
            if self.suspect
            else ""
        )
        return (
            f"the test transaction ended behind pytest-alchemy's back ({short_sql(sql)!r} "
            f"found its savepoint gone){suspect}, so what was written before was committed "
            "for real. pytest-alchemy rebuilds the test database before it is used again."
        )

    def close(self) -> None:
        """Roll the run's transaction back and let the connection go (first checking that
        the transaction is still the run's own)."""
        with self.mutex:
            try:
                if self.shared.connected:
                    self.execute(f"ROLLBACK TO SAVEPOINT {ROOT}")
            finally:
                self._lose_all("the run's transaction ended")
                self.shared.close()

    # -- breaches ------------------------------------------------------------------------

    def check_breach(self, sql: str) -> None:
        """Raise :class:`IsolationError` if the outer transaction has ended (a statement
        that commits by itself); everything open is lost and the connection replaced."""
        if not self.shared.ended():
            return
        self._breach(
            f"the statement {short_sql(sql)!r} ended the test transaction by itself (the "
            "database committed implicitly), so what the test and its fixtures wrote was "
            "committed for real. pytest-alchemy rebuilds the test database before it is "
            "used again."
        )

    def _breach(self, reason: str) -> NoReturn:
        """The outer transaction is gone: everything open is lost, the connection
        replaced, the database marked for a rebuild; raises :class:`IsolationError`."""
        context = self.context()
        written = [(layer.scope, bool(layer.entry.writers), layer.opener) for layer in self.layers]
        written.append((self.root, bool(self._base_writers), "session-scoped fixtures"))
        for scope, wrote, opener in written:
            if wrote and scope is not context.scope:
                scope.lost = f"the rows of {opener} were lost: {reason}"
                scope.lost_fixtures = frozenset(self._written_by.get(scope, {None}))
        self._lose_all(f"it was lost when {context.who} broke isolation: {reason}")
        self.shared.drop()
        self.on_breach(reason)
        raise IsolationError(f"pytest-alchemy: in {context.who}, {reason}")

    def _lose_all(self, reason: str) -> None:
        for transaction in list(self.transactions):
            transaction.lose(reason)
        self.transactions.clear()
        self.entries.clear()
        self.layers.clear()
        self._base_writers.clear()
        self._unobserved.clear()
        self._written_by.clear()
        self._ensured = None

    # -- scopes --------------------------------------------------------------------------

    def ensure_context(self, writes: bool) -> None:
        """Open the layers of the scopes statements run in now, before one runs.

        A statement that may write while a narrower scope's layer is open but its own
        scope's is not (a wider-scoped fixture set up late) is refused: its rows would be
        undone with the narrower scope."""
        if self._unobserved:
            waiting = [
                (e, error)
                for e, error in self._unobserved
                if e.rollback_pending and e in self.entries
            ]
            self._unobserved = []
            self.deferred.extend(error for _, error in waiting)
        context = self.context()
        key = (context, self.shared.generation)
        if self._ensured != key and not self._open_layers(context, writes):
            return  # a read where the scope's layers cannot be: harmless where it lands
        if writes:  # recorded once allowed: a refused write wrote nothing
            self._written_by.setdefault(context.scope, set()).add(context.fixture)

    def _open_layers(self, context: Context, writes: bool) -> bool:
        """Open the missing layers of ``context``'s scopes; returns False for a read that
        runs where they cannot be opened (raises for a write)."""
        for scope in (self.root, *context.scope.chain):
            if scope.lost is not None and None in scope.lost_fixtures:
                raise IsolationError(f"pytest-alchemy: in {context.who}: {scope.lost}")
        if not context.scope.alive:
            if writes:
                raise IsolationError(after_the_end(context.who))
            return False  # a read after the scope's end (a reporting hook)
        chain = context.scope.chain
        depth = 0
        for layer in self.layers:
            if depth < len(chain) and layer.scope is chain[depth]:
                depth += 1
                continue
            if not writes:
                return False  # a read inside a narrower scope's layer
            if not self._fold_layers(depth):
                raise IsolationError(misnested(context.who, layer.opener))
            break
        for scope in chain[depth:]:
            self._open_layer(scope, context.who)
        self._ensured = (context, self.shared.generation)
        return True

    def _fold_layers(self, depth: int) -> bool:
        """Narrower scopes' layers from ``depth`` on are open, and a wider scope is about
        to write: if nothing was written in them, release them (they open again when
        their scope next runs a statement; transactions that only read are moved above).
        Returns whether they were folded away."""
        entry = self.layers[depth].entry
        position = self.entries.index(entry)
        if any(e.writers or _pinned(e) for e in self.entries[position:]):
            return False
        reopen = [e for e in self.entries[position + 1 :] if e.owner is not None and not e.waiting]
        reopen = [e for e in reopen if not isinstance(e.owner, Layer)]
        self.execute(f"RELEASE SAVEPOINT {entry.name}")
        del self.entries[position:]
        del self.layers[depth:]
        self._reopen(reopen)
        return True

    def _open_layer(self, scope: Scope, who: str) -> None:
        top = self.entries[-1] if self.entries else None
        # A spare savepoint at this depth needs no statement.
        entry = top if top is not None and top.owner is None else self._push(None)
        layer = Layer(scope, entry, who)
        entry.owner = layer
        self.layers.append(layer)

    def end_scope(self, scope: Scope) -> None:
        """Roll back everything done in ``scope`` (its layer and all above it)."""
        scope.alive = False
        with self.mutex:
            index = next((i for i, x in enumerate(self.layers) if x.scope is scope), None)
            if index is None:
                return
            layer = self.layers[index]
            entry = layer.entry
            self._written_by.pop(scope, None)
            position = self.entries.index(entry)
            self._ensured = None
            reason = f"it was rolled back when {layer.opener} ended"
            above = self.entries[position + 1 :]
            del self.layers[index:]
            del self.entries[position + 1 :]
            for lost in above:
                lost.rollback_pending = False
                base = getattr(lost.owner, "base", None)
                if base is not None and base in self.entries:
                    # A savepoint of a transaction begun in a wider scope: only it goes.
                    lost.owner.lose_savepoint(lost, reason)
                else:
                    self._lose_owner(lost.owner, reason)
            entry.owner, entry.writers, entry.waiting = None, set(), False  # a spare now
            if self.shared.connected:
                self.execute(f"ROLLBACK TO SAVEPOINT {entry.name}")
            self._settle()

    def restart_scope(
        self, scope: Scope, fixture: str, why: str = "torn down for its next param"
    ) -> None:
        """``fixture`` (of ``scope``) is gone while its scope goes on (pytest moves to
        the fixture's next param, or its set-up failed): undo what the scope holds, if the
        fixture wrote. Rows of other fixtures of the scope go with them: tests using
        those are told."""
        written = self._written_by.get(scope, set())
        if fixture not in written:
            return
        others = sorted(name for name in written - {fixture} if name is not None)
        self.end_scope(scope)
        scope.alive = True
        if others:
            shown = ", ".join(repr(name) for name in others)
            scope.lost = (
                f"the rows that {shown} wrote in {scope.label} were undone when "
                f"{fixture!r} was {why} (they share the scope's savepoint)"
            )
            scope.lost_fixtures = frozenset(others)

    def _lose_owner(self, owner: Any, reason: str) -> None:
        if owner is not None and not isinstance(owner, Layer) and owner in self.transactions:
            self.transactions.discard(owner)
            owner.lose(reason)

    # -- savepoints ----------------------------------------------------------------------

    def drop_spare(self) -> None:
        """Release a spare layer savepoint left on top: anything done from now on belongs
        below it, so it can no longer serve as a layer. Spares only ever sit on top."""
        if self.entries and self.entries[-1].owner is None:
            spare = self.entries.pop()
            self.execute(f"RELEASE SAVEPOINT {spare.name}")

    def _push(self, owner: Any) -> Entry:
        self.drop_spare()
        entry = Entry(f"pa_sp_{next(self._names)}", owner)
        self.execute(f"SAVEPOINT {entry.name}")
        self.entries.append(entry)
        return entry

    def begin(self, owner: Any) -> Entry:
        """A savepoint for a transaction (or a savepoint) of a routed connection."""
        if owner not in self.transactions:
            self.transactions.add(owner)
        return self._push(owner)

    def is_top(self, entry: Entry) -> bool:
        """Whether statements now land in ``entry``'s region."""
        return bool(self.entries) and self.entries[-1] is entry

    def record_write(self, writer: Any) -> None:
        """A statement that may write ran (or is about to run) in the innermost region."""
        for entry in reversed(self.entries):
            if entry.owner is not None:
                entry.writers.add(writer)
                return
        self._base_writers.add(writer)

    @contextmanager
    def statement_savepoint(self) -> Iterator[None]:
        """Run one statement in a savepoint of its own, so that its failure undoes only
        itself (PostgreSQL aborts the whole enclosing savepoint otherwise)."""
        entry = self._push(None)
        entry.owner = _STATEMENT
        try:
            yield
        except BaseException:
            if self.connected and entry in self.entries:
                self.execute(f"ROLLBACK TO SAVEPOINT {entry.name}")
                self._pop_statement(entry)
            raise
        else:
            if self.connected and entry in self.entries:
                self._pop_statement(entry)

    def _pop_statement(self, entry: Entry) -> None:
        self.execute(f"RELEASE SAVEPOINT {entry.name}")
        position = self.entries.index(entry)
        writers = entry.writers
        del self.entries[position:]
        self._merge_down(position, writers)

    def _merge_down(self, position: int, writers: set[Any]) -> None:
        for entry in reversed(self.entries[:position]):
            if entry.owner is not None:
                entry.writers |= writers
                return
        self._base_writers |= writers

    def release(self, entry: Entry) -> None:
        """Commit: release ``entry`` now, or as soon as nothing open sits above it."""
        if entry not in self.entries:
            return
        entry.waiting = True
        self._settle()

    def _open_above(self, entry: Entry, owner: Any) -> list[Entry]:
        """Open savepoints of others above ``entry``, in order."""
        position = self.entries.index(entry)
        return [
            e
            for e in self.entries[position + 1 :]
            if e.owner is not None and e.owner is not owner and not e.waiting
        ]

    def _blockers(self, entry: Entry, owner: Any, *, releasing: bool = False) -> list[Entry]:
        """Open savepoints of others above ``entry`` that hold writes of others (or a
        server-side cursor): ending ``entry`` would end them too. (Those that only read
        are moved above instead.) To release ``entry``, a scope's layer above it that
        holds any writes blocks too: releasing would hand the narrower scope's rows to
        the wider one."""

        def blocks(e: Entry) -> bool:
            if releasing and isinstance(e.owner, Layer) and e.writers:
                return True
            return bool(e.writers - {owner}) or _pinned(e)

        return [e for e in self._open_above(entry, owner) if blocks(e)]

    def _reopen(self, entries: list[Entry]) -> None:
        """Give savepoints ended with one below them (their regions undone, or holding
        nothing) a new savepoint on top, in their order: their transactions and scopes go
        on as if nothing happened."""
        for entry in entries:
            entry.writers = set()
            entry.name = f"pa_sp_{next(self._names)}"
            self.execute(f"SAVEPOINT {entry.name}")
            self.entries.append(entry)

    def _settle(self) -> None:
        """Release every waiting savepoint that nothing open sits above; carry out the
        pending rollbacks that now undo nothing but their owner's work."""
        self._release_waiting()
        for entry in [e for e in self.entries if e.rollback_pending]:
            if entry in self.entries and self.rollback_is_clean(entry):
                owner = entry.owner
                self.rollback(entry, owner, keep=False, describe="")
                owner.ended()
        self._unobserved = [(e, error) for e, error in self._unobserved if e.rollback_pending]

    def rollback_is_clean(self, entry: Entry) -> bool:
        """Whether rolling back to ``entry`` would undo only its owner's work."""
        position = self.entries.index(entry)
        return not self._blockers(entry, entry.owner) and not any(
            e.writers - {entry.owner} for e in self.entries[position:]
        )

    def _release_waiting(self) -> None:
        while True:
            position = next(
                (
                    i
                    for i, e in enumerate(self.entries)
                    if e.waiting and not self._blockers(e, e.owner, releasing=True)
                ),
                None,
            )
            if position is None:
                return
            entry = self.entries[position]
            reopen = self._open_above(entry, entry.owner)
            self.execute(f"RELEASE SAVEPOINT {entry.name}")
            writers: set[Any] = set()
            for gone in self.entries[position:]:
                writers |= gone.writers
            del self.entries[position:]
            self._merge_down(position, writers)
            self._reopen(reopen)

    def rollback(
        self, entry: Entry, owner: Any, *, keep: bool, describe: str, defer: bool = False
    ) -> str:
        """Roll back to ``entry`` (owned by ``owner``); ``keep``: the savepoint stays
        (``ROLLBACK TO SAVEPOINT``) rather than ending with its transaction.

        Returns ``"rolled back"``, or :data:`RELEASED` when the rollback could not be real
        but the owner's own statements only read. Raises :class:`IsolationError` when it
        would undo another transaction's work, unless an exception is already on its way
        out, or ``defer`` (a rollback that may not raise: a pool's reset, a close): then
        the transaction is released, the error kept in :attr:`deferred`, and the
        application's exception (if any) goes on unchanged.
        """
        if entry not in self.entries:
            return "rolled back"
        position = self.entries.index(entry)
        region = self.entries[position:]
        blockers = self._blockers(entry, owner)
        foreign = [e for e in region if e.writers - {owner}]
        if not foreign and not blockers:  # others above only read
            entry.rollback_pending = False
            reopen = self._open_above(entry, owner)
            self.execute(f"ROLLBACK TO SAVEPOINT {entry.name}")
            del self.entries[position + 1 :]
            entry.writers = set()
            if not keep:
                self.execute(f"RELEASE SAVEPOINT {entry.name}")
                del self.entries[position]
            self._reopen(reopen)
            self._settle()
            return "rolled back"
        own_writes = any(owner in e.writers for e in region)
        if own_writes and not self._ending_above(position):
            error = IsolationError(refusal(describe, blockers, foreign, owner))
            if not keep:
                # SQLAlchemy (or the pool) ends its transaction all the same: the rollback
                # is kept pending, carried out once nothing else is in the way.
                told = entry.rollback_pending  # refused (and raised) before
                entry.rollback_pending = True
                if defer:  # a close or a pool's reset: it matters only if seen
                    if not told:
                        self._unobserved.append((entry, error))
                    return PENDING
            if not defer and sys.exc_info()[1] is None and not DEFER_REFUSALS.get():
                raise error
            self.deferred.append(error)
            if not keep:
                return PENDING
        # Nothing of its own to undo (or an exception is already on its way): ending it
        # as a release keeps what the others did.
        for own in region:
            if own.owner is owner and (own is not entry or not keep):
                own.waiting = True
        self._settle()
        return RELEASED

    def _ending_above(self, position: int) -> bool:
        """Whether the savepoint at ``position`` lies above the layer of a scope being
        torn down: its rollback comes anyway, with the layer's."""
        ending = self.context().ending
        if ending is None:
            return False
        for layer in self.layers:
            if ending in layer.scope.chain:
                return self.entries.index(layer.entry) < position
        return False


def _pinned(entry: Entry) -> bool:
    return bool(getattr(entry.owner, "pinned", False))


class _Statement:
    label = "a statement"


_STATEMENT = _Statement()
