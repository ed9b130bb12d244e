"""What a statement sent through a routed connection is: transaction control that the
plugin carries out itself, a savepoint of the application's, a read, or a write.

Transaction control and savepoints are carried out by the plugin. The read/write
judgement (a heuristic on the SQL text) decides: whether a rollback that cannot be real
may end as a release (its transaction only read) or is refused; whether the empty
layers of narrower scopes may be set aside for a wider fixture; whether a transaction
rolled back with its scope is quietly ended (it only read) or reported at its next use.
A write it misses is a function that writes, called from a SELECT.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

#: ``AND [NO] CHAIN`` and ``[NO] RELEASE`` after COMMIT / ROLLBACK (a chained transaction
#: begins at once: the virtual connection begins its next one with its next statement).
_CHAIN: Final = r"(?:\s+AND\s+(?:NO\s+)?CHAIN)?(?:\s+(?:NO\s+)?RELEASE)?"
#: ``BEGIN``, ``START TRANSACTION``, ``COMMIT``, ``END``, ``ROLLBACK`` (with ``WORK`` /
#: ``TRANSACTION`` and, for BEGIN, any modifiers such as ``IMMEDIATE`` or an isolation
#: level), sent by drivers and applications that manage transactions in SQL.
_CONTROL: Final = re.compile(
    r"\s*(?:(?P<begin>BEGIN|START\s+TRANSACTION)\b[^;]*"
    r"|(?P<commit>COMMIT|END)(?:\s+(?:WORK|TRANSACTION))?"
    + _CHAIN
    + r"|(?P<rollback>ROLLBACK|ABORT)(?:\s+(?:WORK|TRANSACTION))?"
    + _CHAIN
    + r")\s*;?\s*\Z",
    re.IGNORECASE,
)
_NAME: Final = r"(?P<name>\"[^\"]+\"|`[^`]+`|\[[^\]]+\]|[\w$]+)"
#: ``SAVEPOINT x``, ``RELEASE [SAVEPOINT] x``, ``ROLLBACK [WORK] TO [SAVEPOINT] x``.
_SAVEPOINT: Final = re.compile(
    r"\s*(?:(?P<savepoint>SAVEPOINT)|(?P<release>RELEASE)(?:\s+SAVEPOINT)?"
    r"|(?P<rollback_to>ROLLBACK)(?:\s+WORK)?\s+TO(?:\s+SAVEPOINT)?)\s+" + _NAME + r"\s*;?\s*\Z",
    re.IGNORECASE,
)
#: First words of statements that change no data: reads, and session settings (``SET
#: NAMES`` that drivers send on connect; a ``SET`` is no row for a rollback to undo).
_READING: Final = frozenset(
    ("select", "show", "explain", "pragma", "describe", "values", "with", "set")
)
#: Comments and white space before a statement's first word.
_LEADING: Final = re.compile(r"(?:\s+|/\*.*?\*/|--[^\n]*(?:\n|\Z)|#[^\n]*(?:\n|\Z))*", re.DOTALL)
_FIRST_WORD: Final = re.compile(r"\(*\s*([A-Za-z]+)")
#: First words that can be transaction control or savepoints (checked before the regexes).
_CONTROL_WORDS: Final = frozenset(
    ("begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release", "set")
)
#: ``SET autocommit = 1`` (MySQL / MariaDB): a switch of the connection's autocommit.
_AUTOCOMMIT: Final = re.compile(
    r"SET\s+(?:SESSION\s+|LOCAL\s+|@@(?:SESSION\.|LOCAL\.)?)?autocommit\s*:?=\s*"
    r"(?P<value>1|0|ON|OFF|TRUE|FALSE|DEFAULT)\s*;?\s*\Z",
    re.IGNORECASE,
)
#: Two-phase commit and XA: not something a savepoint can stand for.
_TWO_PHASE: Final = re.compile(
    r"(?:PREPARE\s+TRANSACTION|COMMIT\s+PREPARED|ROLLBACK\s+PREPARED|XA)\b", re.IGNORECASE
)


@dataclass(frozen=True)
class Control:
    """A transaction-control statement: ``action`` is one of ``begin``, ``commit``,
    ``rollback``, ``savepoint``, ``release``, ``rollback_to`` (``name``: the savepoint's
    name, as written, quotes removed) or ``autocommit`` (``name``: ``on`` or ``off``)."""

    action: str
    name: str = ""


#: Comments and white space after a statement's last word.
_TRAILING: Final = re.compile(r"(?:\s+|;|/\*.*?\*/|--[^\n]*|#[^\n]*)*\Z", re.DOTALL)


def body(sql: str) -> str:
    """The statement without the comments and white space before it."""
    return sql[_LEADING.match(sql).end() :]  # type: ignore[union-attr]  # always matches


def _bare(sql: str) -> str:
    """The statement without comments (and white space) before and after it."""
    sql = body(sql)
    return sql[: _TRAILING.search(sql).start()]  # type: ignore[union-attr]  # always matches


def first_word(sql: str) -> str:
    match = _FIRST_WORD.match(body(sql))
    return match.group(1).lower() if match else ""


def two_phase(sql: str) -> bool:
    """Whether the statement is two-phase commit (PREPARE TRANSACTION...) or XA."""
    return _TWO_PHASE.match(body(sql)) is not None


def control(sql: str, word: str) -> Control | None:
    """The transaction control ``sql`` is (``word`` is its first word), or ``None``."""
    if word not in _CONTROL_WORDS:
        return None
    sql = _bare(sql)
    if word == "set":
        switch = _AUTOCOMMIT.match(sql)
        if switch is None:
            return None
        value = switch.group("value").lower()
        return Control("autocommit", "off" if value in ("0", "off", "false") else "on")
    match = _SAVEPOINT.match(sql)
    if match is not None:
        action = next(k for k in ("savepoint", "release", "rollback_to") if match.group(k))
        name = match.group("name")
        if name[0] in '"`[':
            name = name[1:-1]
        return Control(action, name)
    match = _CONTROL.match(sql)
    if match is not None:
        action = next(k for k in ("begin", "commit", "rollback") if match.group(k))
        return Control(action)
    return None


_WRITING_READ: Final = re.compile(
    r"\b(?:insert|update|delete|merge|into|analy[sz]e)\b", re.IGNORECASE
)


def may_write(word: str, sql: str) -> bool:
    """Whether a statement may change data: anything but a plain read. A read counts as
    a write when a data-changing word follows its first (``WITH ... INSERT``, ``SELECT
    ... INTO``, ``EXPLAIN ANALYZE``), and a ``SET`` when it calls a function. Functions
    that write, called from a ``SELECT``, are not seen: such a SELECT counts as a read."""
    if word not in _READING:
        return True
    if word == "set":
        return "(" in sql
    return word != "pragma" and _WRITING_READ.search(sql) is not None


#: Transaction control after a statement separator: ``INSERT ...; COMMIT``.
_HIDDEN_CONTROL: Final = re.compile(
    r";(?:\s+|/\*.*?\*/|--[^\n]*\n|\#[^\n]*\n)*"
    r"(?:BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE)\b",
    re.IGNORECASE | re.DOTALL,
)


def hidden_control(sql: str) -> bool:
    """Whether a string of several statements carries transaction control after its
    first statement (which the plugin cannot carry out in its place)."""
    return ";" in sql and _HIDDEN_CONTROL.search(sql) is not None


@dataclass(frozen=True)
class Statement:
    """What the plugin needs to know of a statement's text."""

    word: str
    control: Control | None
    writes: bool
    hidden_control: bool
    two_phase: bool


@functools.lru_cache(maxsize=4096)
def classify(sql: str) -> Statement:
    """The statement's first word, its transaction control (if it is some), whether it
    may write, and what would make it refused; cached, as the same texts come again."""
    word = first_word(sql)
    command = control(sql, word)
    return Statement(
        word,
        command,
        command is None and may_write(word, sql),
        command is None and hidden_control(sql),
        command is None and two_phase(sql),
    )
