"""The schema from SQLAlchemy metadata: ``MetaData.create_all``."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.engine import URL, Dialect, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateIndex, CreateTable

from .._errors import AlchemyError, first_line
from ..provision import Provisioner
from ._source import Fingerprint, digest


class MetadataSchema:
    """``MetaData.create_all``."""

    def __init__(self, metadata: MetaData, description: str) -> None:
        self.metadata = metadata
        self.description = description

    def fingerprint(self, dialect: Dialect) -> Fingerprint:
        parts = [b"metadata", dialect.name.encode()]
        try:
            for table in self.metadata.sorted_tables:
                parts.append(str(CreateTable(table).compile(dialect=dialect)).encode())
                for index in sorted(table.indexes, key=lambda i: str(i.name)):
                    parts.append(str(CreateIndex(index).compile(dialect=dialect)).encode())
        except SQLAlchemyError as exc:
            raise AlchemyError(
                f"pytest-alchemy: the schema of {self.description} cannot be compiled for "
                f"{dialect.name}: {first_line(exc)}\n"
                "Fix: use column types that this database supports."
            ) from None
        return {"metadata": digest(parts)}

    def build(self, engine: Engine, provisioner: Provisioner, test_url: URL) -> None:
        try:
            with engine.begin() as conn:
                self.metadata.create_all(conn)
        except SQLAlchemyError as exc:
            raise AlchemyError(
                f"pytest-alchemy: creating the tables of {self.description} failed: "
                f"{first_line(exc)}"
            ) from None
