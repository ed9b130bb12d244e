"""Building the test database's schema (Alembic or metadata) and fingerprinting it."""

from ._alembic import AlembicSchema
from ._guard import ForeignConnectionRefused, aimed_at, only_connections_to
from ._metadata import MetadataSchema
from ._source import BUILD_VERSION, UNCAPTURED, Fingerprint, NoSchema, SchemaSource, digest

__all__ = [
    "BUILD_VERSION",
    "UNCAPTURED",
    "AlembicSchema",
    "Fingerprint",
    "ForeignConnectionRefused",
    "MetadataSchema",
    "NoSchema",
    "SchemaSource",
    "aimed_at",
    "digest",
    "only_connections_to",
]
