"""The price-list export, on asyncio with SQLModel's ``AsyncSession``."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from sqlmodelshop import db
from sqlmodelshop.models import Category, PriceLine, Product


async def price_list(session: AsyncSession) -> list[PriceLine]:
    query = (
        select(Category.name, Product.name, Product.price_cents)
        .join(Product)
        .order_by(col(Category.name), col(Product.name))
    )
    rows = await session.exec(query)
    return [
        PriceLine(category=category, product=product, price_cents=price)
        for category, product, price in rows
    ]


async def export_price_list() -> list[PriceLine]:
    """The export job's entry point: a session of its own on the async engine."""
    async with AsyncSession(db.async_engine) as session:
        return await price_list(session)


async def apply_discount(session: AsyncSession, category: str, percent: int) -> int:
    """Lower every price in ``category`` by ``percent``; commit; return how many changed."""
    query = select(Product).join(Category).where(Category.name == category)
    products = list(await session.exec(query))
    for product in products:
        product.price_cents = product.price_cents * (100 - percent) // 100
        session.add(product)
    await session.commit()
    return len(products)
