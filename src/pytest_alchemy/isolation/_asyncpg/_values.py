"""What asyncpg returns (``Record``, ``Type``, ``Attribute``, ``ServerVersion``), the
psycopg loaders that decode values as asyncpg does, and arguments as psycopg takes them."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from psycopg.adapt import Loader


def _asyncpg() -> Any:
    """The asyncpg module (imported when a facade is first used)."""
    import asyncpg  # type: ignore[import-untyped,unused-ignore]

    return asyncpg


class Type(NamedTuple):
    """asyncpg's ``types.Type``: a column's or parameter's type."""

    oid: int
    name: str
    kind: str
    schema: str


class Attribute(NamedTuple):
    """asyncpg's ``types.Attribute``: a result column."""

    name: str
    type: Type


class ServerVersion(NamedTuple):
    major: int
    minor: int
    micro: int
    releaselevel: str
    serial: int


class Record:
    """asyncpg's ``Record``: a row read by position (as SQLAlchemy reads it) or by name."""

    __slots__ = ("_keys", "_values")

    def __init__(self, keys: dict[str, int], values: Sequence[Any]) -> None:
        self._keys = keys
        self._values = tuple(values)

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            return self._values[self._keys[key]]
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._keys

    def get(self, key: str, default: Any = None) -> Any:
        index = self._keys.get(key)
        return default if index is None else self._values[index]

    def keys(self) -> Iterator[str]:
        return iter(self._keys)

    def values(self) -> Iterator[Any]:
        return iter(self._values)

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((name, self._values[index]) for name, index in self._keys.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            return self._values == other._values
        if isinstance(other, tuple):
            return self._values == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        fields = " ".join(f"{name}={value!r}" for name, value in self.items())
        return f"<Record {fields}>"


def _records(description: Any, rows: Sequence[Sequence[Any]]) -> list[Record]:
    keys: dict[str, int] = {}
    for index, column in enumerate(description or ()):
        keys.setdefault(column.name, index)
    return [Record(keys, row) for row in rows]


JSON_OID, JSONB_OID, BIT_OID, VARBIT_OID = 114, 3802, 1560, 1562
INT2VECTOR_OID, OIDVECTOR_OID = 22, 30


def _loader(decode: Callable[[bytes], Any]) -> type[Loader]:
    """A psycopg (text) loader that hands the value's bytes to ``decode``."""
    from psycopg.adapt import Loader

    class CodecLoader(Loader):
        def load(self, data: Any) -> Any:
            return decode(bytes(data))

    return CodecLoader


@functools.lru_cache(maxsize=8)
def _default_loaders(encoding: str) -> dict[int, type[Loader]]:
    """How asyncpg returns what psycopg would return otherwise: JSON as text, bit
    strings as its ``BitString``, ``int2vector`` and ``oidvector`` (reflection reads
    them) as lists of ints."""
    asyncpg = _asyncpg()

    def text(data: bytes) -> str:
        return data.decode(encoding)

    def bits(data: bytes) -> Any:
        return asyncpg.BitString(data.decode("ascii"))

    def numbers(data: bytes) -> list[int]:
        return [int(number) for number in data.split()]

    as_text, as_bits, as_list = _loader(text), _loader(bits), _loader(numbers)
    return {
        JSON_OID: as_text,
        JSONB_OID: as_text,
        BIT_OID: as_bits,
        VARBIT_OID: as_bits,
        INT2VECTOR_OID: as_list,
        OIDVECTOR_OID: as_list,
    }


def _parameter(value: Any) -> Any:
    """An argument as psycopg takes it (asyncpg's own value types converted)."""
    asyncpg = _asyncpg()
    if isinstance(value, asyncpg.Range):
        from psycopg.types.range import Range

        if value.isempty:
            return Range(empty=True)
        bounds = ("[" if value.lower_inc else "(") + ("]" if value.upper_inc else ")")
        return Range(value.lower, value.upper, bounds)
    if isinstance(value, asyncpg.BitString):
        return value.as_string()
    if isinstance(value, list):
        return [_parameter(item) for item in value]
    return value
