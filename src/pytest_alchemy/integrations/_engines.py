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

from sqlalchemy.engine import URL, CreateEnginePlugin, Engine

#: The name in ``?plugin=`` and in SQLAlchemy's plugin registry.
PLUGIN_NAME = "pytest_alchemy"

#: Who is told of each new engine: the innermost running pytest-alchemy (pytester runs
#: pytest inside pytest).
_listeners: list[Callable[[Engine], None]] = []


def tagged(url: URL) -> URL:
    """``url`` with ``plugin=pytest_alchemy`` added to its query."""
    plugins = url.query.get("plugin", ())
    names = [plugins] if isinstance(plugins, str) else list(plugins)
    if PLUGIN_NAME in names:
        return url
    return url.update_query_pairs([("plugin", PLUGIN_NAME)], append=True)


class RoutingPlugin(CreateEnginePlugin):
    """Tells the running pytest-alchemy of every engine made from a tagged URL."""

    def update_url(self, url: URL) -> URL:
        return url  # SQLAlchemy has already removed "plugin" from the query

    def engine_created(self, engine: Engine) -> None:
        if _listeners:
            _listeners[-1](engine)


@contextmanager
def engines_created(listener: Callable[[Engine], None]) -> Iterator[None]:
    """While inside, ``listener(engine)`` is called for each engine made from a tagged URL."""
    from sqlalchemy.dialects import plugins

    plugins.register(PLUGIN_NAME, __name__, RoutingPlugin.__name__)
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
