from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bookshop import services
from bookshop.models import Author, Book


def test_added_book_is_stored_with_its_author(db_session, make_author):
    author = services.add_author(db_session, "  Octavia E. Butler ")
    book = services.add_book(
        db_session,
        author=author,
        title="Kindred",
        isbn="978-0-8070-8305-5",
        price_cents=1599,
        stock=3,
    )

    stored = db_session.scalars(select(Book).where(Book.isbn == "9780807083055")).one()
    assert stored.id == book.id
    assert stored.title == "Kindred"
    assert stored.stock == 3
    assert stored.author.name == "Octavia E. Butler"
    assert [b.title for b in author.books] == ["Kindred"]


def test_stock_defaults_to_an_empty_shelf(db_session, make_author):
    book = services.add_book(
        db_session,
        author=make_author(),
        title="The Dispossessed",
        isbn="9780061054884",
        price_cents=1099,
    )
    assert book.stock == 0


@pytest.mark.parametrize("isbn", ["12345", "978-0-8070-8305-4", "97808070830XX"])
def test_malformed_isbn_is_rejected_before_touching_the_database(db_session, make_author, isbn):
    author = make_author()
    with pytest.raises(ValueError):
        services.add_book(db_session, author=author, title="Bad", isbn=isbn, price_cents=1)
    assert db_session.scalar(select(func.count()).select_from(Book)) == 0


def test_duplicate_isbn_fails_and_the_session_recovers(db_session, make_book):
    first = make_book("The Left Hand of Darkness", isbn="9780441478125")
    author = first.author

    with pytest.raises(IntegrityError):
        services.add_book(
            db_session,
            author=author,
            title="The Left Hand of Darkness (reprint)",
            isbn="9780441478125",
            price_cents=999,
        )
    # The caller owns the failed transaction and rolls it back...
    db_session.rollback()

    # ...after which the session works again, and committed work survived.
    services.add_book(
        db_session,
        author=author,
        title="The Lathe of Heaven",
        isbn="9781416556961",
        price_cents=1150,
    )
    titles = db_session.scalars(select(Book.title).order_by(Book.id)).all()
    assert titles == ["The Left Hand of Darkness", "The Lathe of Heaven"]
    assert db_session.scalar(select(func.count()).select_from(Author)) == 1


def test_low_stock_list_comes_from_the_applications_own_session(make_book):
    # low_stock_titles() opens a session with bookshop.db.SessionLocal, not
    # the test's session; it still sees the books created in this test.
    make_book("Tehanu", stock=1)
    make_book("Tales from Earthsea", stock=0)
    make_book("The Farthest Shore", stock=12)

    assert services.low_stock_titles(threshold=2) == ["Tales from Earthsea", "Tehanu"]
