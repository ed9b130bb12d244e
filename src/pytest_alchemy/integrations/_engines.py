"""Engines routed as they are created: a SQLAlchemy ``CreateEnginePlugin`` named in the
test database URLs the plugin hands to a framework (``?plugin=pytest_alchemy``).

``create_engine()`` loads the plugins a URL names and calls ``engine_created`` on each
(https://docs.sqlalchemy.org/en/20/core/engines.html#sqlalchemy.engine.CreateEnginePlugin);
``URL._instantiate_plugins`` removes the ``plugin`` key first, so the engine's own URL is
clean. The plugin is registered at run time (``sqlalchemy.dialects.plugins.register``),
not as an entry point: a process that is not under pytest-alchemy and is given such a URL
fails loudly instead of connecting unrouted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import URL, CreateEnginePlugin, Engine

#: The name in ``?plugin=`` and in SQLAlchemy's plugin registry.
PLUGIN_NAME = "pytest_alchemy"

#: The query key that names the bind (Flask-SQLAlchemy bind key) a URL is for.
BIND_KEY = "pytest_alchemy_bind"

#: Who is told of each new engine: the innermost running pytest-alchemy (pytester runs
#: pytest inside pytest).
_listeners: list[Callable[[Engine, str | None], None]] = []


def tagged(url: URL, bind: str | None = None) -> URL:
    """``url`` with ``plugin=pytest_alchemy`` (and the bind key, if any) in its query."""
    pairs = [("plugin", PLUGIN_NAME)]
    if bind is not None:
        pairs.append((BIND_KEY, bind))
    return url.difference_update_query([BIND_KEY]).update_query_pairs(pairs, append=True)


class RoutingPlugin(CreateEnginePlugin):
    """Tells the running pytest-alchemy of every engine made from a tagged URL, and for
    which bind."""

    def __init__(self, url: URL, kwargs: dict[str, Any]) -> None:
        super().__init__(url, kwargs)
        value = url.query.get(BIND_KEY)
        self.bind = value if isinstance(value, str) or value is None else value[0]

    def update_url(self, url: URL) -> URL:
        # SQLAlchemy has already removed "plugin" from the query.
        return url.difference_update_query([BIND_KEY])

    def engine_created(self, engine: Engine) -> None:
        if _listeners:
            _listeners[-1](engine, self.bind)


@contextmanager
def engines_created(listener: Callable[[Engine, str | None], None]) -> Iterator[None]:
    """While inside, ``listener(engine, bind)`` is called for each engine made from a
    tagged URL (``bind``: the bind key it was tagged with, None for the default)."""
    from sqlalchemy.dialects import plugins

    plugins.register(PLUGIN_NAME, __name__, RoutingPlugin.__name__)
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
