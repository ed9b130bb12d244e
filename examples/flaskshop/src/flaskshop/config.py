"""Configuration objects for ``create_app``."""

from __future__ import annotations


class DevelopmentConfig:
    # Relative SQLite paths are resolved in the app's instance folder by
    # Flask-SQLAlchemy. The tests never create or open this file: pytest-alchemy
    # points SQLALCHEMY_DATABASE_URI at the test database before create_app runs.
    SQLALCHEMY_DATABASE_URI = "sqlite:///flaskshop-dev.db"
    JSON_SORT_KEYS = False


class ProductionConfig(DevelopmentConfig):
    SQLALCHEMY_DATABASE_URI = "postgresql+psycopg://shop@db.internal/flaskshop"
