"""asyncpg's ``$n`` placeholders translated to psycopg's."""

from __future__ import annotations

import functools
import re

_TOKENS = re.compile(
    r"""
    (?P<skip>
        (?<![\w$])[Ee]'(?:[^'\\]|\\.|'')*'      # escape string
      | '(?:[^']|'')*'                          # string
      | "(?:[^"]|"")*"                          # quoted identifier
      | --[^\n]*                                # line comment
      | /\*.*?\*/                               # block comment
      | (?<![\w$])(?P<tag>\$(?:[^\W\d]\w*)?\$).*?(?P=tag)  # dollar-quoted string
    )
    | (?<![\w$])\$(?P<number>\d+)               # a parameter
    """,
    re.VERBOSE | re.DOTALL,
)


@functools.lru_cache(maxsize=512)
def translate(query: str) -> tuple[str, tuple[int, ...]]:
    """``query`` with psycopg's placeholders for asyncpg's (``$2`` -> ``%s``), and the
    (0-based) argument each one takes. Every literal ``%`` is doubled, as psycopg reads
    them all; ``$n`` inside strings, quoted names and comments is left alone."""
    order: list[int] = []

    def replace(match: re.Match[str]) -> str:
        number = match.group("number")
        if number is not None:
            order.append(int(number) - 1)
            return "%s"
        return match.group(0).replace("%", "%%")

    parts: list[str] = []
    end = 0
    for match in _TOKENS.finditer(query):
        parts.append(query[end : match.start()].replace("%", "%%"))
        parts.append(replace(match))
        end = match.end()
    parts.append(query[end:].replace("%", "%%"))
    return "".join(parts), tuple(order)
