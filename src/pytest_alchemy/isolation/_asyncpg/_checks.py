"""Arguments checked against the parameter types the server described, before the
statement runs, as asyncpg checks them on the client (its encoders refuse what they
cannot encode): what asyncpg refuses raises its ``DataError``, with its message.

What each type accepts was found by running real asyncpg (0.32) against PostgreSQL
(see tests/test_asyncpg_facade.py, which compares the two):

- ``int2``/``int4``/``int8``: anything with ``__int__`` (float and Decimal are
  truncated, bool is 1 or 0) or ``__index__``, within the type's range;
- ``float4``/``float8``: anything with ``__float__`` or ``__index__`` (not str);
- ``numeric``: what ``Decimal()`` takes (str and bool included);
- ``text``, ``varchar``, ``bpchar``, ``name`` and, without a codec, ``json``/``jsonb``:
  str only;
- ``bool``: bool only (not 0 or 1);
- ``date``, ``time``, ``timetz``: what has the attributes their encoders read;
- ``timestamp``: a date or a naive datetime; ``timestamptz``: a date or any datetime
  (naive ones, and dates, are UTC: handed on so);
- ``uuid``: a ``str`` (not a subclass) of 32 hex digits, dashes anywhere, or what has
  ``bytes``;
- ``bytea``: bytes-like objects;
- arrays of those: a sized iterable (not str, bytes or a mapping) at the top, lists
  (or other sized iterables, not tuples) below, of one shape, at most 6 dimensions.

Values asyncpg converts are handed on converted (an int for an integer parameter, a
float for a float one, a Decimal for a bool given to numeric, an aware datetime for
timestamptz); others are handed on as they are. Types not listed are not checked.
"""

from __future__ import annotations

import datetime
import decimal
import operator
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._values import _asyncpg

Encoder = Callable[[Any], Any]

#: The errors an encoder's refusal is raised as (asyncpg's ``DataError`` then).
_REFUSALS = (TypeError, ValueError, AttributeError, ArithmeticError)

_INT_RANGES = {21: (16, 2**15), 23: (32, 2**31), 20: (64, 2**63)}


def _integer(oid: int) -> Encoder:
    bits, limit = _INT_RANGES[oid]

    def encode(value: Any) -> int:
        try:
            number = int(value) if hasattr(type(value), "__int__") else operator.index(value)
        except OverflowError:
            number = limit  # out of range, below
        if not -limit <= number < limit:
            raise OverflowError(f"value out of int{bits} range")
        return number

    return encode


def _real(value: Any) -> float:
    kind = type(value)
    if hasattr(kind, "__float__"):
        return float(value)
    if hasattr(kind, "__index__"):
        return float(operator.index(value))  # OverflowError: int too large...
    raise TypeError(f"must be real number, not {kind.__name__}")


def _float4(value: Any) -> float:
    number = _real(value)
    try:
        struct.pack("<f", number)
    except OverflowError:
        raise OverflowError("value out of float32 range") from None
    return number


def _numeric(value: Any) -> Any:
    number = decimal.Decimal(value)
    return number if isinstance(value, bool) else value  # psycopg would send a bool


def _text(value: Any) -> Any:
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    return value


def _bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise TypeError(f"a boolean is required (got type {type(value).__name__})")
    return value


def _date(value: Any) -> Any:
    value.toordinal  # noqa: B018  # asyncpg reads it: its AttributeError is the message
    return value


def _time(value: Any) -> Any:
    for name in ("hour", "minute", "second", "microsecond"):
        getattr(value, name)
    return value


def _timetz(value: Any) -> Any:
    value.tzinfo.utcoffset  # noqa: B018  # naive: 'NoneType' object has no attribute...
    return _time(value)


def _stamp(value: Any) -> Any:
    if not isinstance(value, datetime.date):
        raise TypeError(
            f"expected a datetime.date or datetime.datetime instance, got {type(value).__name__!r}"
        )
    return value


def _timestamptz(value: Any) -> Any:
    """A naive datetime or a date is UTC to asyncpg (psycopg: the session's time zone)."""
    _stamp(value)
    if not isinstance(value, datetime.datetime):
        value = datetime.datetime(value.year, value.month, value.day)
    if value.utcoffset() is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


def _timestamp(value: Any) -> Any:
    _stamp(value)
    if isinstance(value, datetime.datetime) and value.utcoffset() is not None:
        raise TypeError("can't subtract offset-naive and offset-aware datetimes")
    return value


_HEX = frozenset("0123456789abcdefABCDEF")


def _uuid(value: Any) -> Any:
    if not isinstance(value, str):
        value.bytes  # noqa: B018  # asyncpg reads it: its AttributeError is the message
        return value
    if type(value) is not str:
        raise TypeError(f"Expected str, got {type(value).__name__}")
    if not 32 <= len(value) <= 36:
        raise ValueError(
            f"invalid UUID {value!r}: length must be between 32..36 characters, got {len(value)}"
        )
    digits = 0
    for char in value:
        if char == "-":
            continue
        if char not in _HEX:
            raise ValueError(f"invalid UUID {value!r}: unexpected character {char!r}")
        digits += 1
        if digits > 32:
            raise ValueError(f"invalid UUID {value!r}: decodes to more than 16 bytes")
    if digits < 32:
        raise ValueError(f"invalid UUID {value!r}: decodes to less than 16 bytes")
    return value


def _bytea(value: Any) -> Any:
    try:
        memoryview(value)
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not {type(value).__name__!r}") from None
    return value


JSON_OIDS = (114, 3802)

#: Each scalar type's check, by OID (it returns the value as psycopg is to take it).
SCALARS: dict[int, Encoder] = {
    **{oid: _integer(oid) for oid in _INT_RANGES},
    700: _float4,
    701: _real,
    1700: _numeric,
    **dict.fromkeys((25, 1043, 1042, 19, *JSON_OIDS), _text),
    16: _bool,
    1082: _date,
    1083: _time,
    1266: _timetz,
    1114: _timestamp,
    1184: _timestamptz,
    2950: _uuid,
    17: _bytea,
}

#: Each checked array type's element type, by OID.
ARRAYS = {
    1005: 21, 1007: 23, 1016: 20, 1021: 700, 1022: 701, 1231: 1700, 1009: 25, 1015: 1043,
    1014: 1042, 1003: 19, 1000: 16, 1182: 1082, 1183: 1083, 1270: 1266, 1115: 1114,
    1185: 1184, 2951: 2950, 1001: 17, 199: 114, 3807: 3802,
}  # fmt: skip

_NOT_CONTAINERS = (str, bytes, bytearray, memoryview)


def _sized(value: Any) -> bool:
    kind = type(value)
    return hasattr(kind, "__len__") and hasattr(kind, "__iter__")


def _sub_array(value: Any) -> bool:
    """Whether an array's item is an array of a further dimension (a tuple is not)."""
    return _sized(value) and not isinstance(value, (*_NOT_CONTAINERS, tuple, Mapping))


def _array(element: Encoder) -> Encoder:
    def encode(value: Any) -> list[Any]:
        if not _sized(value) or isinstance(value, (*_NOT_CONTAINERS, Mapping)):
            raise TypeError(
                f"a sized iterable container expected (got type {type(value).__name__!r})"
            )
        shape = [len(value)]
        first = list(value)
        while first and _sub_array(first[0]):
            if len(shape) == 6:
                raise ValueError(
                    f"number of array dimensions ({len(shape) + 1}) exceed the maximum expected (6)"
                )
            first = list(first[0])
            shape.append(len(first))

        def walk(items: Any, depth: int) -> list[Any]:
            out: list[Any] = []
            for index, item in enumerate(items):
                if depth + 1 < len(shape):
                    if not _sub_array(item) or len(item) != shape[depth + 1]:
                        raise ValueError("non-homogeneous array")
                    out.append(walk(item, depth + 1))
                elif _sub_array(item):
                    raise ValueError("non-homogeneous array")
                else:
                    out.append((index, item))
            return out

        def encoded(items: list[Any]) -> list[Any]:
            out: list[Any] = []
            for item in items:
                if isinstance(item, list):
                    out.append(encoded(item))
                    continue
                index, scalar = item
                if scalar is None:
                    out.append(None)
                    continue
                try:
                    out.append(element(scalar))
                except TypeError as exc:
                    where = f" at index {index}" if len(shape) == 1 else ""
                    raise ValueError(f"invalid array element{where}: {exc}") from exc
            return out

        items = walk(value, 0)
        return encoded(items) if 0 not in shape else []  # psycopg refuses [[]]

    return encode


def encoders(oids: Sequence[int], codecs: Mapping[int, Encoder]) -> list[Encoder | None]:
    """Each parameter's check (None where its type is not checked); ``codecs``: the
    encoders set with ``set_type_codec``, by OID."""

    def scalar(oid: int) -> Encoder | None:
        codec = codecs.get(oid)
        if codec is not None:

            def encode(value: Any) -> Any:
                codec(value)  # what it refuses is refused; the value is handed on
                return value

            return encode
        return SCALARS.get(oid)

    out: list[Encoder | None] = []
    for oid in oids:
        element = ARRAYS.get(oid)
        if element is None:
            out.append(scalar(oid))
            continue
        check = scalar(element)
        out.append(None if check is None else _array(check))
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text[:40] + "..." if len(text) > 40 else text


def checked(
    checks: Sequence[Encoder | None], args: Sequence[Any], row: int | None = None
) -> list[Any]:
    """``args`` as psycopg is to take them, or asyncpg's ``DataError`` for the first
    one asyncpg would refuse (``row``: its place in ``executemany()``'s sequence)."""
    out = list(args)
    for index, (check, value) in enumerate(zip(checks, args, strict=False)):
        if check is None or value is None:
            continue
        try:
            out[index] = check(value)
        except _REFUSALS as exc:
            where = "" if row is None else f" in element #{row} of executemany() sequence"
            raise _asyncpg().exceptions.DataError(
                f"invalid input for query argument ${index + 1}{where}: {_shown(value)} ({exc})"
            ) from exc
    return out
