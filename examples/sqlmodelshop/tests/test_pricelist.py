"""The async price list, with ``async_db_session`` as SQLModel's ``AsyncSession``."""

from __future__ import annotations

import pytest
import sqlmodel
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from sqlmodelshop import pricelist, services
from sqlmodelshop.models import Category, PriceLine, Product

pytestmark = pytest.mark.anyio


async def add_teas(session: AsyncSession) -> None:
    teas = Category(name="Teas")
    session.add_all(
        [
            Product(name="Sencha", price_cents=850, category=teas),
            Product(name="Gyokuro", price_cents=1900, category=teas),
        ]
    )
    await session.commit()


async def test_async_db_session_is_sqlmodels_async_session(
    async_db_session: AsyncSession,
) -> None:
    assert isinstance(async_db_session, AsyncSession)
    assert (await async_db_session.exec(select(Product))).all() == []


async def test_the_price_list(async_db_session: AsyncSession) -> None:
    await add_teas(async_db_session)

    assert await pricelist.price_list(async_db_session) == [
        PriceLine(category="Teas", product="Gyokuro", price_cents=1900),
        PriceLine(category="Teas", product="Sencha", price_cents=850),
    ]


async def test_the_export_job_sees_the_tests_data(async_db_session: AsyncSession) -> None:
    await add_teas(async_db_session)

    # export_price_list() opens AsyncSession(db.async_engine): routed, same transaction.
    exported = await pricelist.export_price_list()

    assert [(line.product, line.price_cents) for line in exported] == [
        ("Gyokuro", 1900),
        ("Sencha", 850),
    ]


async def test_a_discount_is_committed_and_undone_after_the_test(
    async_db_session: AsyncSession,
) -> None:
    await add_teas(async_db_session)

    assert await pricelist.apply_discount(async_db_session, "Teas", 10) == 2

    prices = await async_db_session.exec(select(Product.price_cents).order_by(Product.name))
    assert prices.all() == [1710, 765]


async def test_prices_start_from_nothing(async_db_session: AsyncSession) -> None:
    # The tests above commit products and a discount; none of it is left.
    assert (await async_db_session.exec(select(Category))).all() == []
    assert (await async_db_session.exec(select(Product))).all() == []


async def test_sync_and_async_sessions_share_the_transaction(
    db_session: sqlmodel.Session, async_db_session: AsyncSession
) -> None:
    services.add_category(db_session, "Teas")  # commits on the sync session

    names = await async_db_session.exec(select(Category.name))
    assert names.all() == ["Teas"]

    async_db_session.add(Category(name="Coffees"))
    await async_db_session.commit()
    assert db_session.exec(select(Category.name).order_by(Category.name)).all() == [
        "Coffees",
        "Teas",
    ]
