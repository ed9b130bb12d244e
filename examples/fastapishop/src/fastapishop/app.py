"""The FastAPI application: item and order routes on an ``AsyncSession`` per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fastapishop import db
from fastapishop.models import GIFT_CARD_SKU, Item, Notification, Order


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """At start-up, make sure the gift card is on sale, and count the items."""
    async with db.SessionLocal() as session:
        gift_card = await session.scalar(select(Item).where(Item.sku == GIFT_CARD_SKU))
        if gift_card is None:
            session.add(Item(sku=GIFT_CARD_SKU, name="Gift card", price_cents=2500))
            await session.commit()
        app.state.items_at_startup = await session.scalar(select(func.count()).select_from(Item))
    yield


app = FastAPI(title="fastapishop", lifespan=lifespan)

SessionDep = Annotated[AsyncSession, Depends(db.get_session)]


class ItemIn(BaseModel):
    sku: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=200)
    price_cents: int = Field(ge=0)


class ItemOut(ItemIn):
    model_config = ConfigDict(from_attributes=True)

    id: int


class OrderIn(BaseModel):
    item_id: int
    quantity: int = Field(gt=0)
    email: str = Field(min_length=3, max_length=320)


class OrderOut(OrderIn):
    model_config = ConfigDict(from_attributes=True)

    id: int


@app.post("/items", status_code=201)
async def create_item(data: ItemIn, session: SessionDep) -> ItemOut:
    item = Item(**data.model_dump())
    session.add(item)
    try:
        await session.commit()
    except IntegrityError:
        # The unique constraint on items.sku decides: checking first would race.
        await session.rollback()
        raise HTTPException(409, f"an item with SKU {data.sku!r} exists already") from None
    return ItemOut.model_validate(item)


@app.get("/items")
async def list_items(session: SessionDep) -> list[ItemOut]:
    items = await session.scalars(select(Item).order_by(Item.sku))
    return [ItemOut.model_validate(item) for item in items]


@app.get("/items/{item_id}")
async def get_item(item_id: int, session: SessionDep) -> ItemOut:
    item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(404, f"no item {item_id}")
    return ItemOut.model_validate(item)


async def notify_order_placed(order_id: int) -> None:
    """Background task: queue the confirmation e-mail, in a session of its own."""
    async with db.SessionLocal() as session:
        order = await session.get(Order, order_id)
        if order is None:  # pragma: no cover - the order was committed before
            return
        item = await session.get(Item, order.item_id)
        assert item is not None
        session.add(
            Notification(
                order_id=order.id,
                email=order.email,
                message=f"Thank you for ordering {order.quantity} x {item.name}.",
            )
        )
        await session.commit()


@app.post("/orders", status_code=201)
async def create_order(
    data: OrderIn, session: SessionDep, background_tasks: BackgroundTasks
) -> OrderOut:
    if await session.get(Item, data.item_id) is None:
        raise HTTPException(404, f"no item {data.item_id}")
    order = Order(**data.model_dump())
    session.add(order)
    await session.commit()
    background_tasks.add_task(notify_order_placed, order.id)
    return OrderOut.model_validate(order)


@app.get("/orders")
async def list_orders(session: SessionDep) -> list[OrderOut]:
    orders = await session.scalars(select(Order).order_by(Order.id))
    return [OrderOut.model_validate(order) for order in orders]
