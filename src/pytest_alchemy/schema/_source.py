"""What every schema source provides: a fingerprint (named parts, each a digest) and a
build of the schema in an empty test database."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from importlib import metadata as importlib_metadata
from typing import Protocol

from sqlalchemy.engine import URL, Dialect, Engine

from ..provision import Provisioner

#: Changes when the way the plugin builds databases changes, so that reused ones are rebuilt.
BUILD_VERSION = "2"

#: A schema's fingerprint: named parts ("metadata", "migrations", "env.py"...), each a
#: digest of what defines that part. A reused database is rebuilt when any part differs,
#: and the header names the parts that did.
Fingerprint = Mapping[str, str]


class SchemaSource(Protocol):
    """Where the test database's schema comes from."""

    #: The setting and value, for messages: ``alchemy_metadata = app.models:Base``.
    description: str

    def fingerprint(self, dialect: Dialect) -> Fingerprint:
        """Named digests that together change whenever the schema this source builds
        changes."""

    def build(self, engine: Engine, provisioner: Provisioner, test_url: URL) -> None:
        """Create the schema in the (empty) test database behind ``engine``."""


class NoSchema:
    """No schema configured: the test database starts empty."""

    description = "no schema (set alchemy_metadata or alchemy_alembic_ini)"

    def fingerprint(self, dialect: Dialect) -> Fingerprint:
        return {"schema": digest([b"empty", dialect.name.encode()])}

    def build(self, engine: Engine, provisioner: Provisioner, test_url: URL) -> None:
        return None


def libraries(*names: str) -> str:
    """The "libraries" part: the installed versions of SQLAlchemy and of ``names``
    (distribution names, e.g. ``"alembic"``), which decide the DDL emitted and the
    migrations' behaviour."""
    versions = [f"{name} {installed_version(name)}".encode() for name in ("sqlalchemy", *names)]
    return digest([b"libraries", *versions])


def installed_version(name: str) -> str:
    """The installed version of the distribution ``name``, or ``"unknown"``."""
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:  # pragma: no cover - not installed
        return "unknown"


#: Query keys never fingerprinted: secrets (a digest of a short one can be guessed).
_SECRET_KEY = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def url_options(url: URL) -> str:
    """The "url options" part: the URL's query, which reaches the driver (PostgreSQL's
    ``options=-csearch_path=...`` decides where tables go), sorted; not the host, user
    or database name (which differs per claim and xdist worker), nor secrets."""
    options = sorted(
        (key, [value] if isinstance(value, str) else list(value))
        for key, value in url.query.items()
        if not _SECRET_KEY.search(key)
    )
    return digest([b"url options", json.dumps(options).encode()])


#: The start of a part that could not be computed (a value unique to each computation,
#: so the database is rebuilt rather than trusted). A source that makes one says why in
#: its ``uncaptured`` mapping (part name to reason), for the terminal summary.
UNCAPTURED = "uncaptured-"


def digest(parts: Sequence[bytes]) -> str:
    """A short digest of ``parts`` (length-prefixed, so that boundaries count)."""
    hashed = hashlib.sha256(BUILD_VERSION.encode())
    for part in parts:
        hashed.update(len(part).to_bytes(8, "big"))
        hashed.update(part)
    return hashed.hexdigest()[:16]
