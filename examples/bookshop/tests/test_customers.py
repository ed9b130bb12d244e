from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bookshop import services
from bookshop.models import Customer


def customer_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Customer))


def test_email_is_normalised_on_registration(db_session):
    customer = services.register_customer(
        db_session, email="  Tenar@Atuan.Example ", name=" Tenar "
    )
    assert customer.id is not None
    assert customer.email == "tenar@atuan.example"
    assert customer.name == "Tenar"


def test_duplicate_email_raises_domain_error_and_session_stays_usable(db_session):
    services.register_customer(db_session, email="arha@atuan.example", name="Arha")

    # Differs only in case, so it collides with the unique constraint after
    # normalisation.  The service catches the IntegrityError, rolls back
    # and raises its own error.
    with pytest.raises(services.DuplicateEmail) as excinfo:
        services.register_customer(db_session, email="ARHA@atuan.example", name="Impostor")
    assert excinfo.value.email == "arha@atuan.example"

    # The same session carries on: the first customer is still there and a
    # new one can be registered.
    services.register_customer(db_session, email="kossil@atuan.example", name="Kossil")
    emails = db_session.scalars(select(Customer.email).order_by(Customer.email)).all()
    assert emails == ["arha@atuan.example", "kossil@atuan.example"]


def test_failed_registration_does_not_undo_earlier_orders_of_business(db_session, make_book):
    book = make_book(stock=4)
    ged = services.register_customer(db_session, email="ged@roke.example", name="Ged")
    services.place_order(db_session, customer_id=ged.id, items=[(book.id, 1)])

    with pytest.raises(services.DuplicateEmail):
        services.register_customer(db_session, email="ged@roke.example", name="Ged again")

    # The rollback inside register_customer only undid the failed insert.
    assert len(ged.orders) == 1
    assert book.stock == 3


# The next two tests insert the same unique e-mail address.  Each starts
# from an empty table, whatever ran before: every test's writes are rolled
# back, even though register_customer() commits.


def test_isolation_first_registration(db_session):
    assert customer_count(db_session) == 0
    services.register_customer(db_session, email="ogion@gont.example", name="Ogion")
    assert customer_count(db_session) == 1


def test_isolation_second_registration(db_session):
    assert customer_count(db_session) == 0
    services.register_customer(db_session, email="ogion@gont.example", name="Ogion the Silent")
    assert customer_count(db_session) == 1
