"""Alembic environment for Flask-Migrate with several databases: the default one and
each key of ``SQLALCHEMY_BINDS`` (here ``audit``). ``flask db ...`` pushes the app's
context; every revision's ``upgrade(engine_name)`` is run once per database.

Shaped like Flask-Migrate's ``flask-multidb`` template (``flask db init --multidb``),
but taking the engines from ``db.engine`` / ``db.engines[key]`` directly: the
template's ``db.get_engine()`` is deprecated in Flask-SQLAlchemy 3.1.
"""

from __future__ import annotations

import logging
from logging.config import fileConfig
from typing import Any

from alembic import context
from flask import current_app
from sqlalchemy import Engine, MetaData

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)
logger = logging.getLogger("alembic.env")

extension = current_app.extensions["migrate"]
target_db = extension.db

# "" is the default database; the others are the bind keys.
bind_names: list[str] = list(current_app.config.get("SQLALCHEMY_BINDS") or {})
db_names: list[str] = ["", *bind_names]


def engine_for(name: str) -> Engine:
    return target_db.engines[name] if name else target_db.engine


def url_for(name: str) -> str:
    url = engine_for(name).url.render_as_string(hide_password=False)
    return url.replace("%", "%%")


def metadata_for(name: str) -> MetaData:
    """The tables of one database: Flask-SQLAlchemy keeps a MetaData per bind key."""
    return target_db.metadatas[name or None]


config.set_main_option("sqlalchemy.url", url_for(""))
for name in bind_names:
    config.set_section_option(name, "sqlalchemy.url", url_for(name))


def run_migrations_offline() -> None:
    """Write each database's SQL to ``<name>.sql`` without connecting
    (``flask db upgrade --sql``); the default database's file is ``.sql``."""
    for name in db_names:
        url = (
            config.get_main_option("sqlalchemy.url")
            if not name
            else config.get_section_option(name, "sqlalchemy.url")
        )
        logger.info("Migrating database %s to %s.sql", name or "<default>", name)
        with open(f"{name}.sql", "w") as buffer:
            context.configure(
                url=url,
                output_buffer=buffer,
                target_metadata=metadata_for(name),
                literal_binds=True,
            )
            with context.begin_transaction():
                context.run_migrations(engine_name=name)


def run_migrations_online() -> None:
    """Open a connection and a transaction on every database, migrate each one, then
    commit them all (or roll them all back when a migration fails)."""

    def skip_empty_autogenerate(context, revision, directives):  # type: ignore[no-untyped-def]
        if not getattr(config.cmd_opts, "autogenerate", False):
            return
        if all(ops.is_empty() for ops in directives[0].upgrade_ops_list):
            directives[:] = []
            logger.info("No changes in schema detected.")

    options = dict(extension.configure_args)
    options.setdefault("process_revision_directives", skip_empty_autogenerate)

    connections: dict[str, Any] = {}
    transactions: dict[str, Any] = {}
    try:
        for name in db_names:
            connections[name] = engine_for(name).connect()
            transactions[name] = connections[name].begin()
        for name in db_names:
            logger.info("Migrating database %s", name or "<default>")
            context.configure(
                connection=connections[name],
                upgrade_token=f"{name}_upgrades",
                downgrade_token=f"{name}_downgrades",
                target_metadata=metadata_for(name),
                **options,
            )
            context.run_migrations(engine_name=name)
        for transaction in transactions.values():
            transaction.commit()
    except BaseException:
        for transaction in transactions.values():
            if transaction.is_active:
                transaction.rollback()
        raise
    finally:
        for connection in connections.values():
            connection.close()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
