"""Test-data helpers for the bookshop tests.

There is deliberately no database set-up here: pytest-alchemy provides the
``db_session`` fixture (and friends) from the settings in pyproject.toml.
These fixtures only build catalogue data through the service layer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from bookshop import services
from bookshop.models import Author, Book, Customer

_serial = itertools.count(1)


def make_isbn(n: int) -> str:
    """A valid ISBN-13 in the 979-0 range, unique per ``n``."""
    body = f"9790{n:08d}"
    checksum = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body))
    return body + str((10 - checksum % 10) % 10)


@pytest.fixture
def make_author(db_session: Session) -> Callable[..., Author]:
    def make(name: str = "Ursula K. Le Guin") -> Author:
        return services.add_author(db_session, name)

    return make


@pytest.fixture
def make_book(db_session: Session, make_author: Callable[..., Author]) -> Callable[..., Book]:
    def make(
        title: str = "A Wizard of Earthsea",
        *,
        author: Author | None = None,
        price_cents: int = 1250,
        stock: int = 5,
        isbn: str | None = None,
    ) -> Book:
        return services.add_book(
            db_session,
            author=author if author is not None else make_author(),
            title=title,
            isbn=isbn if isbn is not None else make_isbn(next(_serial)),
            price_cents=price_cents,
            stock=stock,
        )

    return make


@pytest.fixture
def customer(db_session: Session) -> Customer:
    return services.register_customer(db_session, email="ged@roke.example", name="Ged Sparrowhawk")
