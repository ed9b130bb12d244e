"""The one thing pytest-alchemy cannot read from pyproject.toml: the session class.

``alchemy_session_options`` is a fixture-only setting (there is no ini line for it), so
it is overridden here. SQLModel's ``AsyncSession`` makes ``async_db_session`` one of its
kind, and ``db_session`` a ``sqlmodel.Session`` (the AsyncSession's
``sync_session_class``): both have SQLModel's ``exec()``. No database code otherwise.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession


@pytest.fixture(scope="session")
def alchemy_session_options() -> dict[str, Any]:
    return {"class_": AsyncSession}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
