"""Engines of the SQLModel shop, created at import time from the environment.

The web handlers use the sync ``engine``; the price-list export runs on asyncio and uses
``async_engine``. Both point at the same database. Sessions are made the SQLModel way,
``Session(engine)`` / ``AsyncSession(async_engine)``, without a sessionmaker.
"""

from __future__ import annotations

import os

from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import create_engine

engine = create_engine(os.environ.get("SQLMODELSHOP_DATABASE_URL", "sqlite:///sqlmodelshop.db"))

async_engine = create_async_engine(
    os.environ.get("SQLMODELSHOP_ASYNC_DATABASE_URL", "sqlite+aiosqlite:///sqlmodelshop.db")
)
