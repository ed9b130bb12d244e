"""The sync service layer, with ``db_session`` as a ``sqlmodel.Session``."""

from __future__ import annotations

import pytest
import sqlmodel
from sqlmodel import func, select

from sqlmodelshop import services
from sqlmodelshop.models import Category, Product, ProductCreate


def test_db_session_is_sqlmodels_session(db_session: sqlmodel.Session) -> None:
    assert isinstance(db_session, sqlmodel.Session)
    assert db_session.exec(select(func.count()).select_from(Category)).one() == 0


def test_a_category_is_committed(db_session: sqlmodel.Session) -> None:
    teas = services.add_category(db_session, "  Teas ")

    assert teas.id is not None
    assert db_session.exec(select(Category.name)).all() == ["Teas"]


def test_the_same_category_in_another_test_starts_from_empty(
    db_session: sqlmodel.Session,
) -> None:
    # The test above adds "Teas" too: whichever runs second passes only because the
    # first one's commit was rolled back.
    assert db_session.exec(select(Category)).all() == []
    assert services.add_category(db_session, "Teas").name == "Teas"


def test_a_duplicate_category_rolls_back_and_the_session_carries_on(
    db_session: sqlmodel.Session,
) -> None:
    services.add_category(db_session, "Teas")

    with pytest.raises(services.DuplicateCategory):
        services.add_category(db_session, "Teas")

    services.add_category(db_session, "Coffees")
    assert db_session.exec(select(Category.name).order_by(Category.name)).all() == [
        "Coffees",
        "Teas",
    ]


def test_products_are_listed_by_price(db_session: sqlmodel.Session) -> None:
    services.add_category(db_session, "Teas")
    for name, price in [("Gyokuro", 1900), ("Sencha", 850), ("Bancha", 850)]:
        services.add_product(
            db_session, ProductCreate(name=name, price_cents=price, category_name="Teas")
        )

    products = services.products_in(db_session, "Teas")

    assert [(p.name, p.price_cents) for p in products] == [
        ("Bancha", 850),
        ("Sencha", 850),
        ("Gyokuro", 1900),
    ]
    assert {p.category.name for p in products} == {"Teas"}


def test_an_unknown_category_adds_nothing(db_session: sqlmodel.Session) -> None:
    with pytest.raises(services.UnknownCategory):
        services.add_product(
            db_session, ProductCreate(name="Sencha", price_cents=850, category_name="Teas")
        )
    assert db_session.exec(select(Product)).all() == []


def test_a_session_the_app_opens_itself_sees_the_tests_data(
    db_session: sqlmodel.Session,
) -> None:
    teas = Category(name="Teas")
    db_session.add(teas)
    db_session.add_all(
        [
            Product(name="Gyokuro", price_cents=1900, category=teas),
            Product(name="Sencha", price_cents=850, category=teas),
            Product(name="Matcha", price_cents=2400, category=teas),
        ]
    )
    db_session.commit()

    # services.cheapest() opens Session(db.engine): the routed engine, same transaction.
    assert services.cheapest(2) == ["Sencha", "Gyokuro"]
