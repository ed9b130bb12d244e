from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bookshop import services
from bookshop.models import Book, Order, OrderLine, OrderStatus


def stock_of(session, book_id: int) -> int:
    return session.scalar(select(Book.stock).where(Book.id == book_id))


def test_placing_an_order_takes_stock_and_records_prices(db_session, make_book, customer):
    wizard = make_book("A Wizard of Earthsea", price_cents=1250, stock=5)
    tombs = make_book("The Tombs of Atuan", price_cents=1100, stock=2)

    order = services.place_order(
        db_session, customer_id=customer.id, items=[(wizard.id, 2), (tombs.id, 2)]
    )

    assert order.status == OrderStatus.PLACED
    assert order.created_at is not None
    assert [(line.book.title, line.quantity, line.unit_price_cents) for line in order.lines] == [
        ("A Wizard of Earthsea", 2, 1250),
        ("The Tombs of Atuan", 2, 1100),
    ]
    assert order.total_cents == 2 * 1250 + 2 * 1100
    assert stock_of(db_session, wizard.id) == 3
    assert stock_of(db_session, tombs.id) == 0
    assert customer.orders == [order]


def test_repeated_items_are_merged_into_one_line(db_session, make_book, customer):
    book = make_book(stock=10)
    order = services.place_order(
        db_session, customer_id=customer.id, items=[(book.id, 1), (book.id, 3)]
    )
    assert [(line.book_id, line.quantity) for line in order.lines] == [(book.id, 4)]
    assert book.stock == 6


def test_line_price_is_fixed_when_the_order_is_placed(db_session, make_book, customer):
    book = make_book(price_cents=900)
    order = services.place_order(db_session, customer_id=customer.id, items=[(book.id, 1)])

    book.price_cents = 1900
    db_session.commit()

    assert order.lines[0].unit_price_cents == 900


def test_out_of_stock_leaves_stock_unchanged(db_session, make_book, customer):
    plenty = make_book("The Farthest Shore", stock=10)
    scarce = make_book("Tehanu", stock=1)

    # The books are taken in id order, so stock for `plenty` has already been
    # decremented in the database when `scarce` turns out to be short.
    with pytest.raises(services.OutOfStock) as excinfo:
        services.place_order(
            db_session, customer_id=customer.id, items=[(plenty.id, 3), (scarce.id, 2)]
        )

    err = excinfo.value
    assert (err.book_id, err.title, err.requested, err.available) == (scarce.id, "Tehanu", 2, 1)
    assert stock_of(db_session, plenty.id) == 10
    assert stock_of(db_session, scarce.id) == 1
    assert db_session.scalar(select(func.count()).select_from(Order)) == 0
    assert db_session.scalar(select(func.count()).select_from(OrderLine)) == 0

    # The session is usable again: the customer can order what is there.
    order = services.place_order(db_session, customer_id=customer.id, items=[(scarce.id, 1)])
    assert order.status == OrderStatus.PLACED
    assert stock_of(db_session, scarce.id) == 0


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([], ValueError),
        ([(1, 0)], ValueError),
        ([(10_000, 1)], services.NotFound),
    ],
    ids=["no-items", "zero-quantity", "unknown-book"],
)
def test_invalid_orders_are_refused(db_session, customer, items, error):
    with pytest.raises(error):
        services.place_order(db_session, customer_id=customer.id, items=items)
    assert db_session.scalar(select(func.count()).select_from(Order)) == 0


def test_cancelling_puts_books_back_on_the_shelf(db_session, make_book, customer):
    a = make_book("Always Coming Home", stock=3)
    b = make_book("The Word for World Is Forest", stock=3)
    order = services.place_order(db_session, customer_id=customer.id, items=[(a.id, 2), (b.id, 1)])
    assert (stock_of(db_session, a.id), stock_of(db_session, b.id)) == (1, 2)

    cancelled = services.cancel_order(db_session, order.id)

    assert cancelled.status == OrderStatus.CANCELLED
    assert cancelled.cancelled_at is not None
    assert cancelled.restock_pending is False
    assert (stock_of(db_session, a.id), stock_of(db_session, b.id)) == (3, 3)


def test_an_order_cannot_be_cancelled_twice(db_session, make_book, customer):
    book = make_book(stock=2)
    order = services.place_order(db_session, customer_id=customer.id, items=[(book.id, 1)])
    services.cancel_order(db_session, order.id)

    with pytest.raises(services.OrderNotCancellable):
        services.cancel_order(db_session, order.id)
    assert stock_of(db_session, book.id) == 2


def test_failed_restock_is_undone_but_the_order_is_still_cancelled(
    db_session, make_book, customer, monkeypatch
):
    first = make_book("Rocannon's World", stock=5)
    second = make_book("Planet of Exile", stock=5)
    order = services.place_order(
        db_session, customer_id=customer.id, items=[(first.id, 2), (second.id, 2)]
    )

    # Let the first line go back on the shelf, then fail on the second the
    # way a lock timeout would.
    real_restock = services._restock_line
    calls = []

    def flaky_restock(session, line):
        calls.append(line.book_id)
        if len(calls) == 2:
            raise OperationalError("UPDATE books ...", {}, Exception("lock wait timeout"))
        real_restock(session, line)

    monkeypatch.setattr(services, "_restock_line", flaky_restock)

    cancelled = services.cancel_order(db_session, order.id)

    assert calls == [first.id, second.id]
    assert cancelled.status == OrderStatus.CANCELLED
    assert cancelled.restock_pending is True
    # The savepoint rolled back the first line's restock too.
    assert stock_of(db_session, first.id) == 3
    assert stock_of(db_session, second.id) == 3
