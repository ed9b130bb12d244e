"""Database URLs: parsing with a clear error, and rendering without the password."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


def render_url(url: URL) -> str:
    """The URL as text with the password hidden: safe for headers, messages and logs."""
    return url.render_as_string(hide_password=True)


def parse_url(value: str | URL, source: str) -> URL:
    """Parse a database URL, or raise a SettingError that names where it came from."""
    from ._errors import SettingError

    if isinstance(value, URL):
        return value
    try:
        return make_url(value)
    except (ArgumentError, ValueError) as exc:
        shown = value
        if "@" in shown and "://" in shown:
            # Never echo a password, even from a malformed URL.
            scheme, _, rest = shown.partition("://")
            credentials, _, host = rest.rpartition("@")
            if ":" in credentials:
                credentials = credentials.split(":", 1)[0] + ":***"
            shown = f"{scheme}://{credentials}@{host}"
        raise SettingError(
            f"pytest-alchemy: {source} is not a valid database URL: {shown!r} ({exc}).\n"
            "Fix: use the form dialect+driver://user:password@host:port/database, for example "
            "postgresql+psycopg://postgres@127.0.0.1:5432/app or sqlite:///app.db."
        ) from None
