"""Database URLs: parsing with a clear error, and rendering without the password."""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


def render_url(url: URL) -> str:
    """The URL as text with the password hidden (in the credentials and in the query
    string): safe for headers, messages and logs."""
    return hide_password(url.render_as_string(hide_password=True))


def parse_url(value: str | URL, source: str) -> URL:
    """Parse a database URL, or raise a SettingError that names where it came from."""
    from ._errors import SettingError

    if isinstance(value, URL):
        return value
    try:
        return make_url(value)
    except (ArgumentError, ValueError) as exc:
        shown = hide_password(value)
        raise SettingError(
            f"pytest-alchemy: {source} is not a valid database URL: {shown!r} ({exc}).\n"
            "Fix: use the form dialect+driver://user:password@host:port/database, for example "
            "postgresql+psycopg://postgres@127.0.0.1:5432/app or sqlite:///app.db."
        ) from None


def hide_password(text: str) -> str:
    """Mask the password in URL-like text, even text that does not parse."""
    match = re.match(r"[\w+.-]+:/+", text)
    start = match.end() if match else 0
    text = re.sub(r"(?i)([?&](?:password|passwd|sslpassword|pwd)=)[^&]*", r"\1***", text)
    credentials, at, rest = text[start:].rpartition("@")
    if not at or ":" not in credentials:
        return text
    user = credentials.split(":", 1)[0]
    return f"{text[:start]}{user}:***@{rest}"
