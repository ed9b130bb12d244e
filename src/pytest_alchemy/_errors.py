"""Errors that stop a run with a short message naming the setting and the fix."""

from __future__ import annotations

from sqlalchemy.engine import URL

from ._urls import render_url


class AlchemyError(Exception):
    """A problem with the test database or its settings, told in one short message.

    The message names what went wrong, the setting (or file) involved and a fix. The
    pytest layer shows it without a traceback.
    """


class SettingError(AlchemyError):
    """A setting has a value that cannot work (shown as a usage error)."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, without SQLAlchemy's footer."""
    orig = getattr(exc, "orig", None)
    text = str(orig if isinstance(orig, BaseException) else exc)
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("(Background on this error"):
            return line
    return type(exc).__name__


_AUTH_WORDS = ("authentication failed", "access denied", "password", "no pg_hba.conf entry")
_UNREACHABLE_WORDS = (
    "connection refused",
    "can't connect",
    "could not connect",
    "timeout",
    "timed out",
    "no route to host",
    "lost connection",
)
#: What resolvers and drivers say about a host name that does not resolve.
_UNRESOLVED_WORDS = (
    "name or service not known",
    "could not translate host name",
    "failed to resolve host",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated with hostname",
    "getaddrinfo failed",
    "unknown host",
)


def connect_error(exc: BaseException, url: URL, source: str) -> AlchemyError:
    """Turn a driver's failure to connect into a message with the host and a fix."""
    reason = first_line(exc)
    lowered = reason.lower()
    where = f"{url.host or 'localhost'}:{url.port}" if url.port else (url.host or "localhost")
    shown = render_url(url)
    unknown_role = 'role "' in lowered and "does not exist" in lowered
    if unknown_role or any(word in lowered for word in _AUTH_WORDS):
        return AlchemyError(
            f"pytest-alchemy: authentication failed for user {url.username!r} at {where} "
            f"({source} = {shown}): {reason}\n"
            f"Fix: correct the user name and password in {source}."
        )
    if url.host and any(word in lowered for word in _UNRESOLVED_WORDS):
        return unresolved_host(url, source, reason)
    if any(word in lowered for word in _UNREACHABLE_WORDS):
        return AlchemyError(
            f"pytest-alchemy: the database server at {where} does not answer "
            f"({source} = {shown}): {reason}\n"
            f"Fix: start the server, or point {source} at one that is running."
        )
    return AlchemyError(
        f"pytest-alchemy: cannot connect to {shown} ({source}): {reason}\n"
        f"Fix: check the server and the URL in {source}."
    )


def unresolved_host(url: URL, source: str, reason: str) -> AlchemyError:
    """The host name in the URL does not resolve: no server to start, a name to correct."""
    return AlchemyError(
        f"pytest-alchemy: the host name {url.host!r} does not resolve "
        f"({source} = {render_url(url)}): {reason}\n"
        f"Fix: correct the host name in {source}, or make it resolve (DNS, /etc/hosts)."
    )


class IsolationError(AlchemyError):
    """Something escaped, or would escape, the test's transaction.

    Raised (or reported as a failure of the test that caused it) where one shared database
    connection cannot do what production would: a write that would outlive its scope, a
    rollback that would undo another connection's commit, a statement that ends the
    transaction by itself (MariaDB/MySQL implicit commits), a connection used after the
    test that checked it out ended, or a connection to the test database that the plugin
    does not route. The message names the objects involved and the fix.
    """
