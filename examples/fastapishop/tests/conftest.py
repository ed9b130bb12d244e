"""HTTP clients for the fastapishop tests.

There is no database code here: pytest-alchemy builds the test database with the
migrations, routes the app's AsyncEngine and async_sessionmaker into each test's
transaction and provides ``async_db_session`` / ``db_session``, from the settings in
pyproject.toml.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from fastapishop.app import app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An async client calling the app in the test's own event loop (no lifespan)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        yield client
