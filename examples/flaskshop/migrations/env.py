"""Alembic environment for Flask-Migrate: the engine and metadata are those of the
Flask-SQLAlchemy extension of the current app (``flask db ...`` pushes its context).

Shaped like Flask-Migrate's ``flask`` template, but taking ``db.engine`` directly:
the template's ``db.get_engine()`` is deprecated in Flask-SQLAlchemy 3.1.
"""

from __future__ import annotations

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)
logger = logging.getLogger("alembic.env")

extension = current_app.extensions["migrate"]
target_db = extension.db


def engine_url() -> str:
    url = target_db.engine.url.render_as_string(hide_password=False)
    return url.replace("%", "%%")


config.set_main_option("sqlalchemy.url", engine_url())


def run_migrations_offline() -> None:
    """Emit SQL for the configured URL without connecting (``flask db upgrade --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_db.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a connection of the app's engine."""

    def skip_empty_autogenerate(context, revision, directives):  # type: ignore[no-untyped-def]
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            logger.info("No changes in schema detected.")

    options = dict(extension.configure_args)
    options.setdefault("process_revision_directives", skip_empty_autogenerate)

    with target_db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_db.metadata, **options)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
