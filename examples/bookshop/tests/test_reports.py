from __future__ import annotations

import pytest
from sqlalchemy import select

from bookshop import db, services
from bookshop.models import Book
from bookshop.services import AuthorSales


def test_sales_report_totals_per_author(db_session, make_author, make_book, customer):
    le_guin = make_author("Ursula K. Le Guin")
    butler = make_author("Octavia E. Butler")
    jemisin = make_author("N. K. Jemisin")  # nothing sold
    earthsea = make_book("A Wizard of Earthsea", author=le_guin, price_cents=1000, stock=10)
    atuan = make_book("The Tombs of Atuan", author=le_guin, price_cents=1200, stock=10)
    kindred = make_book("Kindred", author=butler, price_cents=1500, stock=10)
    make_book("The Fifth Season", author=jemisin, price_cents=1800, stock=10)

    services.place_order(
        db_session, customer_id=customer.id, items=[(earthsea.id, 2), (kindred.id, 1)]
    )
    services.place_order(db_session, customer_id=customer.id, items=[(atuan.id, 1)])
    cancelled = services.place_order(db_session, customer_id=customer.id, items=[(kindred.id, 5)])
    services.cancel_order(db_session, cancelled.id)

    # sales_report() opens its own connection from the application's engine.
    report = services.sales_report(db.engine)

    assert report == [
        AuthorSales(le_guin.id, "Ursula K. Le Guin", copies_sold=3, revenue_cents=3200),
        AuthorSales(butler.id, "Octavia E. Butler", copies_sold=1, revenue_cents=1500),
        AuthorSales(jemisin.id, "N. K. Jemisin", copies_sold=0, revenue_cents=0),
    ]


def test_sales_report_of_an_empty_shop_is_empty(db_connection):
    # Requesting db_connection is what routes bookshop.db.engine to the test
    # database; this test writes nothing itself.
    assert services.sales_report(db.engine) == []


def test_restock_all_adds_copies_to_every_book(db_session, make_book):
    low = make_book("Tehanu", stock=0)
    high = make_book("The Other Wind", stock=7)

    changed = services.restock_all(db.engine, 3)

    assert changed == 2
    # The update went through another connection of the application's engine
    # and was committed there; the test's session sees it.
    stocks = {row.id: row.stock for row in db_session.execute(select(Book.id, Book.stock))}
    assert stocks == {low.id: 3, high.id: 10}
    db_session.refresh(low)
    assert low.stock == 3


def test_restock_then_report_through_the_engine(db_session, make_book, customer):
    book = make_book("Changing Planes", price_cents=700, stock=1)
    services.restock_all(db.engine, 4)

    services.place_order(db_session, customer_id=customer.id, items=[(book.id, 5)])

    [row] = services.sales_report(db.engine)
    assert (row.copies_sold, row.revenue_cents) == (5, 3500)


@pytest.mark.parametrize("copies", [0, -2])
def test_restock_all_rejects_non_positive_amounts(copies):
    with pytest.raises(ValueError):
        services.restock_all(db.engine, copies)
