"""A small Flask shop: categories and products behind a JSON API."""

from __future__ import annotations

from typing import Any

from flask import Flask

from .extensions import db, migrate

__version__ = "0.1.0"


def create_app(config_object: Any = None) -> Flask:
    """The application factory (``flask --app flaskshop run``, ``flask db upgrade``).

    ``config_object`` is a class, module or import string for ``config.from_object``;
    the development configuration by default. ``FLASK_*`` environment variables
    override it (``FLASK_SQLALCHEMY_DATABASE_URI=postgresql://...``).
    """
    app = Flask(__name__)
    app.config.from_object(config_object or "flaskshop.config.DevelopmentConfig")
    app.config.from_prefixed_env()

    db.init_app(app)
    migrate.init_app(app, db)

    from . import models  # noqa: F401  - the models' tables, for Flask-Migrate
    from .views import bp

    app.register_blueprint(bp)
    return app
