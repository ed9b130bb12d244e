"""pytest-alchemy: real, migrated test databases and rollback-isolated SQLAlchemy sessions.

The pytest plugin lives in :mod:`pytest_alchemy.plugin` and is loaded automatically.
The core below it works without pytest:

- :class:`TestDatabase` creates (or reuses), builds and drops a test database that the
  plugin marks as its own;
- :class:`IsolatedTransaction` runs work inside one connection's transaction and rolls
  it back, with sessions and application engines routed into it.
"""

from ._database import TestDatabase
from ._errors import AlchemyError, IsolationError
from ._isolation import IsolatedTransaction

__all__ = ["AlchemyError", "IsolatedTransaction", "IsolationError", "TestDatabase"]
__version__ = "0.1.0"
