"""The app through ``httpx.AsyncClient(transport=ASGITransport(app))``, in async tests."""

from __future__ import annotations

import httpx
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from fastapishop.app import app
from fastapishop.models import GIFT_CARD_SKU, Item, Notification, Order

TEA = {"sku": "TEA-1", "name": "Sencha", "price_cents": 850}


async def count(session: AsyncSession, model: type) -> int:
    return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_a_created_item_is_committed_and_seen_by_the_test(
    client: httpx.AsyncClient, async_db_session: AsyncSession
) -> None:
    response = await client.post("/items", json=TEA)

    assert response.status_code == 201
    created = response.json()
    assert created == {"id": created["id"], **TEA}
    item = await async_db_session.get(Item, created["id"])
    assert item is not None
    assert (item.sku, item.name, item.price_cents) == ("TEA-1", "Sencha", 850)


async def test_the_same_sku_again_in_another_test_starts_from_empty(
    client: httpx.AsyncClient, async_db_session: AsyncSession
) -> None:
    # Same SKU as the test above: whichever runs second passes only because the first
    # one's committed item was rolled back.
    assert await count(async_db_session, Item) == 0
    assert (await client.post("/items", json=TEA)).status_code == 201
    assert await count(async_db_session, Item) == 1


async def test_items_the_test_commits_are_served(
    client: httpx.AsyncClient, async_db_session: AsyncSession
) -> None:
    async_db_session.add_all(
        [
            Item(sku="COF-2", name="Mocha", price_cents=1200),
            Item(sku="COF-1", name="Arabica", price_cents=1100),
        ]
    )
    await async_db_session.commit()

    listed = (await client.get("/items")).json()
    assert [(item["sku"], item["name"]) for item in listed] == [
        ("COF-1", "Arabica"),
        ("COF-2", "Mocha"),
    ]
    one = await client.get(f"/items/{listed[1]['id']}")
    assert one.status_code == 200
    assert one.json()["name"] == "Mocha"


async def test_an_unknown_item_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/999999")
    assert response.status_code == 404
    assert response.json() == {"detail": "no item 999999"}


async def test_a_duplicate_sku_is_409_and_everything_carries_on(
    client: httpx.AsyncClient, async_db_session: AsyncSession
) -> None:
    async_db_session.add(Item(sku="TEA-1", name="Sencha", price_cents=850))
    await async_db_session.commit()

    duplicate = await client.post("/items", json={**TEA, "name": "Another sencha"})
    assert duplicate.status_code == 409
    assert duplicate.json() == {"detail": "an item with SKU 'TEA-1' exists already"}

    # The route's rollback undid only its own insert: the test's item is still there,
    # the next request commits, and the test's session goes on working.
    assert (await client.post("/items", json={**TEA, "sku": "TEA-2"})).status_code == 201
    assert [item["sku"] for item in (await client.get("/items")).json()] == ["TEA-1", "TEA-2"]
    assert list(await async_db_session.scalars(select(Item.name).order_by(Item.sku))) == [
        "Sencha",
        "Sencha",
    ]
    async_db_session.add(Item(sku="TEA-3", name="Gyokuro", price_cents=1900))
    await async_db_session.commit()
    assert await count(async_db_session, Item) == 3


async def test_placing_an_order_queues_a_notification_in_the_background(
    client: httpx.AsyncClient, async_db_session: AsyncSession
) -> None:
    item = Item(sku="TEA-1", name="Sencha", price_cents=850)
    async_db_session.add(item)
    await async_db_session.flush()
    item_id = item.id  # read before the commit expires it (no lazy loads in async code)
    await async_db_session.commit()

    response = await client.post(
        "/orders", json={"item_id": item_id, "quantity": 3, "email": "ada@example.com"}
    )

    assert response.status_code == 201
    order_id = response.json()["id"]
    # The background task ran after the response, with a session of its own, and
    # committed; the test sees its row.
    notifications = list(await async_db_session.scalars(select(Notification)))
    assert [(n.order_id, n.email, n.message) for n in notifications] == [
        (order_id, "ada@example.com", "Thank you for ordering 3 x Sencha.")
    ]
    assert [order["id"] for order in (await client.get("/orders")).json()] == [order_id]


async def test_an_order_for_an_unknown_item_is_404_and_queues_nothing(
    client: httpx.AsyncClient, async_db_session: AsyncSession
) -> None:
    response = await client.post(
        "/orders", json={"item_id": 424242, "quantity": 1, "email": "ada@example.com"}
    )
    assert response.status_code == 404
    assert await count(async_db_session, Order) == 0
    assert await count(async_db_session, Notification) == 0


async def test_every_table_starts_empty(async_db_session: AsyncSession) -> None:
    # Other tests commit items, orders, notifications and the lifespan's gift card,
    # through the app and through the test's session; none of it is left.
    for model in (Item, Order, Notification):
        assert await count(async_db_session, model) == 0


async def test_the_lifespan_seeds_the_gift_card(
    client: httpx.AsyncClient, async_db_session: AsyncSession
) -> None:
    async_db_session.add(Item(sku="TEA-1", name="Sencha", price_cents=850))
    await async_db_session.commit()

    # ASGITransport does not run the lifespan; run it as the server would.
    async with app.router.lifespan_context(app):
        assert app.state.items_at_startup == 2  # the test's item and the gift card
        skus = [item["sku"] for item in (await client.get("/items")).json()]

    assert skus == [GIFT_CARD_SKU, "TEA-1"]
    gift_card = await async_db_session.scalar(select(Item).where(Item.sku == GIFT_CARD_SKU))
    assert gift_card is not None
    assert gift_card.price_cents == 2500


async def test_rows_written_on_async_db_connection_are_served(
    client: httpx.AsyncClient, async_db_connection: AsyncConnection
) -> None:
    await async_db_connection.execute(
        insert(Item), [{"sku": "CUP-1", "name": "Tea cup", "price_cents": 600}]
    )
    await async_db_connection.commit()

    assert [item["name"] for item in (await client.get("/items")).json()] == ["Tea cup"]


async def test_async_db_engine_is_the_test_database(
    client: httpx.AsyncClient, async_db_engine: AsyncEngine
) -> None:
    assert (await client.post("/items", json=TEA)).status_code == 201

    async with async_db_engine.connect() as connection:
        names = (await connection.execute(select(Item.name))).scalars().all()
    assert names == ["Sencha"]
