"""The test database's life: create or reuse it, build its schema, drop it; only ever
touching a database that carries the plugin's marker."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError

from ._errors import AlchemyError, connect_error
from ._urls import render_url
from .provision import LEGACY_PART, Marker, Provisioner, plugin_engine, provisioner_for
from .schema import UNCAPTURED, Fingerprint, NoSchema, SchemaSource, digest
from .schema._prepare import PrepareHook, no_prepare_fingerprint
from .schema._source import installed_version, libraries, url_options

#: How many names a run tries (``test_<base>``, then ``_2``, ``_3``...) when other runs
#: hold the claim on them.
MAX_NAMES = 9


class TestDatabase:
    """A database that the plugin owns, named ``test_<base>`` (plus ``suffix``).

    Nothing happens on construction; :meth:`setup` claims the name for this run (the
    next free one, ``test_<base>_2``..., when other runs hold it), creates (or reuses)
    and builds it the first time it is called, and :meth:`teardown` drops it unless it
    is to be kept, and gives up the claim.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(
        self,
        base_url: URL,
        *,
        source: str,
        sqlite_dir: Path,
        schema: SchemaSource | None = None,
        suffix: str = "",
        reuse: bool = False,
        recreate: bool = False,
        engine_options: dict[str, Any] | None = None,
        lock_timeout: float = 10.0,
        prepare: PrepareHook | Callable[[Connection], None] | None = None,
        on_rename: Callable[[URL], object] | None = None,
    ) -> None:
        self.provisioner: Provisioner = provisioner_for(
            base_url, source=source, sqlite_dir=sqlite_dir
        )
        self.source = source
        self.schema: SchemaSource = schema or NoSchema()
        if prepare is not None and not isinstance(prepare, PrepareHook):
            prepare = PrepareHook(prepare, "the prepare argument of TestDatabase")
        #: Run on a new database before its schema is built (not on reuse).
        self.prepare: PrepareHook | None = prepare
        #: The name the settings give; :attr:`name` is the one this run claimed.
        self.primary = self.provisioner.test_name(suffix)
        self.name = self.primary
        self.url = self.provisioner.test_url(self.name)
        self.suffix = suffix
        #: Called with the new URL when this run takes another name than the primary.
        self.on_rename = on_rename
        self._claimed = False
        self.reuse = reuse
        self.recreate = recreate
        #: Why :attr:`recreate` was set, when not by --alchemy-create-db.
        self.recreate_reason: str | None = None
        self.engine_options = engine_options or {}
        self.lock_timeout = lock_timeout
        self.reused = False
        #: What this run did to the database, for the terminal summary: "created",
        #: "rebuilt (<why>)" or "reused"; ``None`` until it is set up.
        self.outcome: str | None = None
        self._engine: Engine | None = None
        self._ready = False
        self._dirtied = False
        self._touched = False
        self._failure: AlchemyError | None = None
        #: The fingerprint to mark the database with once the build that makes its schema
        #: elsewhere has run (see :meth:`confirm`).
        self._unconfirmed: Fingerprint | None = None
        self._lock = threading.RLock()

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    def __repr__(self) -> str:
        return f"<TestDatabase {render_url(self.url)}>"

    # -- life ---------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The engine on the test database (made on first access; it connects nowhere
        until used, and the database is not created until :meth:`setup`)."""
        with self._lock:
            if self._engine is None:
                options = {**self.provisioner.engine_options(), **self.engine_options}
                self._engine = plugin_engine(self.url, **options)
                self._follow_name(self._engine)
            return self._engine

    def _follow_name(self, engine: Engine) -> None:
        """Make ``engine`` connect to the name this run claims, should that differ from
        the one it was made for (it is made before the claim is taken)."""
        made_for = engine.url

        def retarget(
            dialect: Dialect, conn_rec: Any, cargs: list[Any], cparams: dict[str, Any]
        ) -> None:
            if self.url == made_for:
                return
            old_args, old_params = dialect.create_connect_args(made_for)
            new_args, new_params = dialect.create_connect_args(self.url)
            for key, value in new_params.items():
                if old_params.get(key) != value:
                    cparams[key] = value
            cargs[: len(old_args)] = new_args

        event.listen(engine, "do_connect", retarget)

    def candidate_names(self) -> list[str]:
        """The names this run may take, in order: the primary one (``test_<base>``, with
        the xdist suffix), then ``_2`` to ``_<MAX_NAMES>`` for when other runs hold it."""
        names = [self.primary]
        for number in range(2, MAX_NAMES + 1):
            names.append(self.provisioner.test_name(f"{self.suffix}_{number}"))
        return names

    def candidate_urls(self) -> list[URL]:
        """The URLs of :meth:`candidate_names`: a connection to any of them that the
        run did not route is refused, whichever one this run claimed (an engine made
        from the primary URL must not reach another run's database)."""
        return [self.provisioner.test_url(name) for name in self.candidate_names()]

    def claim(self) -> None:
        """Claim a name for this run: the primary one, or the next that no other run
        holds (see :meth:`Provisioner.claim`); the claim lasts until :meth:`teardown`.
        A run that takes another name than the primary one never keeps its database
        (``--alchemy-reuse-db`` applies to the primary name only); a run that takes the
        primary name drops those that earlier runs left under the other names, when no
        run holds them. Raises :class:`AlchemyError` when all :data:`MAX_NAMES` are held."""
        with self._lock:
            if self._claimed:
                return
            names = self.candidate_names()
            for name in names:
                if self.provisioner.claim(name):
                    break
            else:
                raise AlchemyError(
                    f"pytest-alchemy: the test databases {names[0]!r} to {names[-1]!r} at "
                    f"{render_url(self.url)} are all in use by other pytest runs.\n"
                    "Fix: wait for those runs to end, or give this run another base "
                    f"database in {self.source}."
                )
            self._claimed = True
            if name == self.primary:
                self._sweep(names[1:])
                return
            self.reuse = False  # a stand-in name: dropped at the end, never kept
            self.name = name
            self.url = self.provisioner.test_url(name)
            if self._engine is not None:
                self._engine.url = self.url
            if self.on_rename is not None:
                self.on_rename(self.url)

    def _sweep(self, names: list[str]) -> None:
        """Drop the databases that earlier runs left under stand-in names (a run killed
        before its teardown), when they are ours and no run holds or uses them."""
        provisioner = self.provisioner
        for name in names:
            if not provisioner.exists(name) or not provisioner.claim(name):
                continue
            try:
                if provisioner.read_marker(name) is not None and not provisioner.sessions(name):
                    provisioner.drop(name)
            finally:
                provisioner.release(name)

    def setup(self) -> Engine:
        """The engine on the ready test database, creating and building it on first use."""
        with self._lock:
            if self._failure is not None:
                raise self._failure
            if not self._ready:
                try:
                    self._provision()
                except AlchemyError as exc:
                    self._failure = exc  # every later use fails the same way, at once
                    raise
                self._ready = True
            return self.engine

    def confirm(self) -> None:
        """Mark as built a database whose schema another database's build made (until
        then it carries the marker of a half-built one, which no run reuses)."""
        with self._lock:
            fingerprint, self._unconfirmed = self._unconfirmed, None
            if fingerprint is not None:
                self.provisioner.write_marker(self.name, Marker(fingerprint))

    @property
    def is_set_up(self) -> bool:
        return self._ready

    def mark_dirty(self) -> None:
        """Record on the database that its content can no longer be trusted (something
        was committed to it for real), so that no later run reuses it, and rebuild it
        before its next use in this run."""
        with self._lock:
            self._ready = False
            self.recreate = True
            self._dirtied = True
            if self.provisioner.exists(self.name):
                self._check_ours("mark")
                self.provisioner.write_marker(self.name, Marker(None))

    def _provision(self) -> None:
        provisioner = self.provisioner
        if self.name == self.provisioner.base_name():
            raise AlchemyError(  # pragma: no cover - test names always carry the prefix
                f"pytest-alchemy: refusing to use the base database {self.name!r} as a test one."
            )
        self.claim()
        fingerprint = self._fingerprint()
        outcome = "created"
        if provisioner.exists(self.name):
            marker = self._check_ours("use")
            busy = provisioner.sessions(self.name)
            if busy:  # a run of a version that takes no claim
                raise AlchemyError(
                    f"pytest-alchemy: the test database {self.name!r} at "
                    f"{render_url(self.url)} is in use by {busy} other connection(s), "
                    "most likely another pytest run on the same base database; it was "
                    "left alone.\nFix: wait for that run to end, or give this run another "
                    f"base database in {self.source}."
                )
            if self.reuse and not self.recreate and marker.fingerprint == fingerprint:
                self.reused = True
                self._touched = True
                self._connect().dispose()
                provisioner.configure_database(self.name, self.lock_timeout)
                self.outcome = self._told("reused")
                return
            outcome = f"rebuilt ({self._rebuild_reason(marker, fingerprint)})"
            provisioner.drop(self.name)
        self._touched = True
        provisioner.create(self.name)
        provisioner.apply_database_settings(self.name)
        engine = self._connect()
        # A schema another database's build makes (a bind that one Flask-Migrate upgrade
        # migrates with the default one): marked built only once that build ran.
        built_elsewhere = bool(getattr(self.schema, "built_elsewhere", lambda: False)())
        try:
            self._prepare(engine)
            self.schema.build(engine, provisioner, self.url)
        finally:
            engine.dispose()  # connections made while building may carry migration state
        if built_elsewhere:
            self._unconfirmed = fingerprint  # stays "half-built" until confirm()
        else:
            provisioner.write_marker(self.name, Marker(fingerprint))
        provisioner.configure_database(self.name, self.lock_timeout)
        self.recreate = False
        self._dirtied = False
        self.outcome = self._told(outcome)

    def _told(self, outcome: str) -> str:
        """The outcome as the terminal summary tells it, saying why the name differs."""
        if self.name == self.primary:
            return outcome
        return f"{outcome} ({self.primary!r} is in use by another run)"

    def _fingerprint(self) -> Fingerprint:
        """The schema source's parts, plus what every source shares: the server, the
        plugin, the libraries (SQLAlchemy; a source may add its own), the URL's query
        options, the base database's settings and the prepare hook."""
        provisioner = self.provisioner
        parts = dict(self.schema.fingerprint(provisioner.server_dialect()))
        settings = json.dumps(dict(provisioner.database_settings()), sort_keys=True)
        parts["server"] = digest([provisioner.server_version().encode()])
        parts["plugin"] = digest([installed_version("pytest-alchemy").encode()])
        parts.setdefault("libraries", libraries())
        parts["url options"] = url_options(self.url)
        parts["database settings"] = digest([settings.encode()])
        parts["prepare"] = (
            self.prepare.fingerprint() if self.prepare is not None else no_prepare_fingerprint()
        )
        return parts

    def _prepare(self, engine: Engine) -> None:
        """Run the prepare hook on the new, empty database, before its schema is built."""
        if self.prepare is not None:
            self.prepare.run(engine, self.provisioner, self.url)

    def _rebuild_reason(self, marker: Marker, fingerprint: Fingerprint) -> str:
        if self._dirtied:
            return "a test committed to it for real"
        if self.recreate and self.recreate_reason is None:
            return "--alchemy-create-db"
        if self.recreate and self.reuse and marker.fingerprint == fingerprint:
            return self.recreate_reason or "--alchemy-create-db"  # its own reason otherwise
        if marker.fingerprint is None:  # half-built, or marked dirty
            return "left dirty by an earlier run"
        if self.reuse:
            old = marker.fingerprint
            changed = sorted({k for k in {*old, *fingerprint} if old.get(k) != fingerprint.get(k)})
            if LEGACY_PART in changed:
                return f"built by {LEGACY_PART}"
            uncaptured: dict[str, str] = getattr(self.schema, "uncaptured", {})
            reasons = [
                f"{part} cannot be fingerprinted: {uncaptured[part]}"
                for part in changed
                if part in uncaptured and fingerprint[part].startswith(UNCAPTURED)
            ]
            settled = [part for part in changed if part not in uncaptured]
            if settled:
                reasons.insert(0, f"changed: {', '.join(settled)}")
            return "; ".join(reasons)
        if self.name != self.primary:
            return "left by a run that was killed"
        return "left by an earlier run"

    def _connect(self) -> Engine:
        """A separate engine for building (never routed), connection checked."""
        options = {**self.provisioner.engine_options(), **self.engine_options}
        engine = plugin_engine(self.url, **options)
        self.provisioner.configure_engine(engine)
        try:
            engine.connect().close()
        except DBAPIError as exc:
            engine.dispose()
            raise connect_error(exc, self.url, self.source) from None
        return engine

    def _check_ours(self, action: str) -> Marker:
        marker = self.provisioner.read_marker(self.name)
        if marker is None:
            raise AlchemyError(
                f"pytest-alchemy: refusing to {action} the database {self.name!r} at "
                f"{render_url(self.url)}: it exists but was not created by pytest-alchemy "
                "(it carries no pytest-alchemy marker), so it may hold someone's data.\n"
                f"Fix: {self.provisioner.not_ours_fix(self.name)}"
            )
        return marker

    def teardown(self) -> None:
        """Close every connection and drop the database unless it is to be kept."""
        with self._lock:
            engine, self._engine = self._engine, None
            self._ready = False
            try:
                if engine is not None:
                    engine.dispose()
                if self._touched and not self.reuse and self.provisioner.exists(self.name):
                    self._check_ours("drop")
                    self.provisioner.drop(self.name)
            finally:
                self._touched = False
                self._claimed = False
                self.provisioner.close()  # gives up the claim
