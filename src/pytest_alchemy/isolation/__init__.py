"""Layered rollback isolation on one shared connection: the ledger of savepoints and
scopes, the virtual driver connections that routed engines hand out, and the router.

Usable without pytest: :class:`~pytest_alchemy.IsolatedTransaction` is built from these.
"""

from ._drivers import Driver, driver_for
from ._ledger import Ledger
from ._router import Router, SessionFactory
from ._scope import Context, Scope
from ._virtual import VirtualConnection

__all__ = [
    "Context",
    "Driver",
    "Ledger",
    "Router",
    "Scope",
    "SessionFactory",
    "VirtualConnection",
    "driver_for",
]
