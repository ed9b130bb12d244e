"""The bookshop's service layer.

Every function that changes data commits its own work, the way request
handlers in a web application usually do.  Callers pass in the Session (or,
for the reporting and bulk helpers, the Engine) to use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from bookshop import db
from bookshop.models import Author, Base, Book, Customer, Order, OrderLine, OrderStatus

# ---------------------------------------------------------------- errors


class BookshopError(Exception):
    """Base class of the domain errors raised by the service layer."""


class NotFound(BookshopError):
    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key!r} does not exist")
        self.kind = kind
        self.key = key


class DuplicateEmail(BookshopError):
    def __init__(self, email: str) -> None:
        super().__init__(f"a customer with e-mail {email!r} is already registered")
        self.email = email


class OutOfStock(BookshopError):
    def __init__(self, book_id: int, title: str, requested: int, available: int) -> None:
        super().__init__(f"{title!r} (book {book_id}): {requested} requested, {available} in stock")
        self.book_id = book_id
        self.title = title
        self.requested = requested
        self.available = available


class OrderNotCancellable(BookshopError):
    def __init__(self, order_id: int, status: str) -> None:
        super().__init__(f"order {order_id} is {status} and cannot be cancelled")
        self.order_id = order_id
        self.status = status


# ---------------------------------------------------------------- catalogue


def normalise_isbn(raw: str) -> str:
    """Return the 13 digits of an ISBN-13, rejecting malformed ones."""
    digits = raw.replace("-", "").replace(" ", "")
    if len(digits) != 13 or not digits.isdigit():
        raise ValueError(f"not an ISBN-13: {raw!r}")
    checksum = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits))
    if checksum % 10 != 0:
        raise ValueError(f"bad ISBN-13 check digit: {raw!r}")
    return digits


def add_author(session: Session, name: str) -> Author:
    author = Author(name=name.strip())
    session.add(author)
    session.commit()
    return author


def add_book(
    session: Session,
    *,
    author: Author,
    title: str,
    isbn: str,
    price_cents: int,
    stock: int = 0,
) -> Book:
    """Add a book to the catalogue.

    A second book with the same ISBN makes the commit raise
    ``sqlalchemy.exc.IntegrityError``; rolling back is left to the caller.
    """
    if price_cents < 0:
        raise ValueError("price_cents must not be negative")
    if stock < 0:
        raise ValueError("stock must not be negative")
    book = Book(
        author=author,
        title=title.strip(),
        isbn=normalise_isbn(isbn),
        price_cents=price_cents,
        stock=stock,
    )
    session.add(book)
    session.commit()
    return book


def low_stock_titles(threshold: int) -> list[str]:
    """Titles of books with fewer than ``threshold`` copies, for the reorder list.

    Opens its own session from the application's sessionmaker, as a
    background job would.
    """
    with db.SessionLocal() as session:
        return list(
            session.scalars(select(Book.title).where(Book.stock < threshold).order_by(Book.title))
        )


# ---------------------------------------------------------------- customers


def register_customer(session: Session, *, email: str, name: str) -> Customer:
    customer = Customer(email=email.strip().lower(), name=name.strip())
    session.add(customer)
    try:
        session.commit()
    except IntegrityError:
        # The unique constraint on customers.email is the source of truth:
        # checking first and inserting afterwards would race.
        session.rollback()
        raise DuplicateEmail(customer.email) from None
    return customer


# ---------------------------------------------------------------- orders


def place_order(session: Session, *, customer_id: int, items: Iterable[tuple[int, int]]) -> Order:
    """Place an order for ``items``, pairs of (book id, quantity).

    Stock is taken with a conditional UPDATE per book, so two concurrent
    orders cannot both take the last copy.  If any book is short, everything
    done so far is rolled back and ``OutOfStock`` is raised.
    """
    wanted: dict[int, int] = {}
    for book_id, quantity in items:
        if quantity <= 0:
            raise ValueError(f"quantity must be positive, got {quantity}")
        wanted[book_id] = wanted.get(book_id, 0) + quantity
    if not wanted:
        raise ValueError("an order needs at least one item")

    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("customer", customer_id)
    books = {book.id: book for book in session.scalars(select(Book).where(Book.id.in_(wanted)))}
    for book_id in wanted:
        if book_id not in books:
            raise NotFound("book", book_id)

    # Linked by id, not through Order.customer: that would also put the
    # order into customer.orders before we know it will be placed.
    order = Order(customer_id=customer.id, status=OrderStatus.PLACED)
    # Always touch books in id order so concurrent orders lock rows in the
    # same sequence and cannot deadlock each other.
    for book_id in sorted(wanted):
        quantity = wanted[book_id]
        book = books[book_id]
        taken = cast(
            "CursorResult[Any]",
            session.execute(
                update(Book)
                .where(Book.id == book_id, Book.stock >= quantity)
                .values(stock=Book.stock - quantity)
                .execution_options(synchronize_session=False)
            ),
        )
        if taken.rowcount != 1:
            title = book.title
            available = session.scalar(select(Book.stock).where(Book.id == book_id))
            session.rollback()
            raise OutOfStock(book_id, title, quantity, available or 0)
        order.lines.append(
            OrderLine(book=book, quantity=quantity, unit_price_cents=book.price_cents)
        )
    session.add(order)
    session.commit()
    return order


def _restock_line(session: Session, line: OrderLine) -> None:
    session.execute(
        update(Book)
        .where(Book.id == line.book_id)
        .values(stock=Book.stock + line.quantity)
        .execution_options(synchronize_session=False)
    )


def cancel_order(session: Session, order_id: int) -> Order:
    """Cancel a placed order and put its books back on the shelf.

    Restocking runs in a savepoint: if it fails part-way (a lock timeout on
    a busy book row, say), the half-done restock is undone but the
    cancellation itself still goes through, flagged ``restock_pending`` for
    a clerk to deal with.
    """
    order = session.get(Order, order_id, with_for_update=True)
    if order is None:
        raise NotFound("order", order_id)
    if order.status != OrderStatus.PLACED:
        raise OrderNotCancellable(order_id, order.status)

    order.status = OrderStatus.CANCELLED
    order.cancelled_at = func.now()
    try:
        with session.begin_nested():
            for line in order.lines:
                _restock_line(session, line)
    except OperationalError:
        order.restock_pending = True
    session.commit()
    return order


# ---------------------------------------------------------------- reporting and bulk work


@dataclass(frozen=True)
class AuthorSales:
    author_id: int
    author: str
    copies_sold: int
    revenue_cents: int


def sales_report(engine: Engine) -> list[AuthorSales]:
    """Copies sold and revenue per author, best seller first.

    Cancelled orders do not count; authors without sales are listed with
    zeros.  Plain Core on a connection of its own: reports do not need the
    ORM.
    """
    authors = Base.metadata.tables["authors"]
    books = Base.metadata.tables["books"]
    lines = Base.metadata.tables["order_lines"]
    orders = Base.metadata.tables["orders"]

    sold = (
        select(
            lines.c.book_id,
            lines.c.quantity,
            (lines.c.quantity * lines.c.unit_price_cents).label("amount"),
        )
        .join(orders, orders.c.id == lines.c.order_id)
        .where(orders.c.status == OrderStatus.PLACED)
        .subquery("sold")
    )
    copies = func.coalesce(func.sum(sold.c.quantity), 0)
    revenue = func.coalesce(func.sum(sold.c.amount), 0)
    query = (
        select(authors.c.id, authors.c.name, copies.label("copies"), revenue.label("revenue"))
        .select_from(authors)
        .outerjoin(books, books.c.author_id == authors.c.id)
        .outerjoin(sold, sold.c.book_id == books.c.id)
        .group_by(authors.c.id, authors.c.name)
        .order_by(revenue.desc(), authors.c.name)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    # SUM() comes back as Decimal on MySQL/MariaDB; the report is integral.
    return [AuthorSales(row.id, row.name, int(row.copies), int(row.revenue)) for row in rows]


def restock_all(engine: Engine, copies: int) -> int:
    """Add ``copies`` to the stock of every book; return how many books changed."""
    if copies <= 0:
        raise ValueError("copies must be positive")
    books = Base.metadata.tables["books"]
    with engine.begin() as conn:
        result = conn.execute(update(books).values(stock=books.c.stock + copies))
    return result.rowcount
