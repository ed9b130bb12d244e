"""Database wiring of the FastAPI shop.

The engine is created at import time from ``FASTAPISHOP_DATABASE_URL`` (default: a SQLite
file in the working directory through aiosqlite), as most FastAPI applications do.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///fastapishop.db"

engine = create_async_engine(os.environ.get("FASTAPISHOP_DATABASE_URL", DEFAULT_DATABASE_URL))

# expire_on_commit=False: a route returns the objects it has just committed, and reading
# an expired attribute would need I/O outside an await.
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: one session per request, closed after the response."""
    async with SessionLocal() as session:
        yield session
