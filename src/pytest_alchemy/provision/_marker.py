"""The ownership marker every provisioner writes on a test database it created, and the
names of the server locks that claim a test database for one run."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

OWNER = "pytest-alchemy"
#: The table that held the marker inside the test database in earlier versions
#: (SQLite, MariaDB): still recognised as the plugin's, always rebuilt. MySQL, which has
#: no database comments, still keeps its marker there.
MARKER_TABLE = "_pytest_alchemy"
#: The one part of a fingerprint written by pytest-alchemy 0.1.
LEGACY_PART = "an older pytest-alchemy"


@dataclass(frozen=True)
class Marker:
    """What the plugin writes on a database it created: proof of ownership, and the
    fingerprint of the schema it holds: named parts, each a digest (``None`` while the
    schema is being built, or once a test committed to it for real)."""

    fingerprint: Mapping[str, str] | None

    def dumps(self) -> str:
        fingerprint = dict(self.fingerprint) if self.fingerprint is not None else None
        return json.dumps({"owner": OWNER, "fingerprint": fingerprint}, sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> Marker | None:
        """The marker in ``text``, or ``None`` when the text is not one of ours."""
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("owner") != OWNER:
            return None
        fingerprint = data.get("fingerprint")
        if isinstance(fingerprint, str):  # written by pytest-alchemy 0.1: one digest
            return cls({LEGACY_PART: fingerprint})
        if isinstance(fingerprint, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in fingerprint.items()
        ):
            return cls(fingerprint)
        return cls(None)


def legacy_marker(text: str | None) -> Marker | None:
    """The marker of a database marked the old way (a ``_pytest_alchemy`` table inside
    it, earlier versions): the plugin's, so it may be dropped, but never
    reused (its fingerprint is an older plugin's); ``None`` when the text is not ours."""
    if Marker.loads(text) is None:
        return None
    return Marker({LEGACY_PART: "a marker table"})


def claim_key(name: str) -> str:
    """The name of a server lock that claims the test database ``name``: at most 64
    characters (MySQL's limit for lock names), the same in every run."""
    key = f"{OWNER}:{name}"
    if len(key) <= 64:
        return key
    return f"{OWNER}:{hashlib.sha256(name.encode()).hexdigest()[:40]}"
