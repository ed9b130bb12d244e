"""Configuration objects for ``create_app``."""

from __future__ import annotations

from typing import ClassVar


class DevelopmentConfig:
    # Relative SQLite paths are resolved in the app's instance folder by
    # Flask-SQLAlchemy. The tests never create or open this file: pytest-alchemy
    # points SQLALCHEMY_DATABASE_URI at the test database before create_app runs.
    SQLALCHEMY_DATABASE_URI = "sqlite:///flaskshop-dev.db"
    # A second database for the audit log (models with ``__bind_key__ = "audit"``).
    # pytest-alchemy gives it a test database of its own, test_<base>_audit.
    SQLALCHEMY_BINDS: ClassVar[dict[str, str]] = {"audit": "sqlite:///flaskshop-audit-dev.db"}
    JSON_SORT_KEYS = False


class ProductionConfig(DevelopmentConfig):
    SQLALCHEMY_DATABASE_URI = "postgresql+psycopg://shop@db.internal/flaskshop"
    SQLALCHEMY_BINDS: ClassVar[dict[str, str]] = {
        "audit": "postgresql+psycopg://shop@db.internal/flaskshop_audit"
    }
