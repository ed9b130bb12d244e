"""The same app through Starlette's sync ``TestClient``, which runs it in a thread of its
own with its own event loop; the test reads and writes with the sync ``db_session``."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from fastapishop.app import app
from fastapishop.models import GIFT_CARD_SKU, Item, Notification

TEA = {"sku": "TEA-1", "name": "Sencha", "price_cents": 850}


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_the_lifespan_seeds_the_gift_card_for_the_test_only(db_session: Session) -> None:
    with TestClient(app) as client:  # runs the lifespan
        assert app.state.items_at_startup == 1
        assert [item["sku"] for item in client.get("/items").json()] == [GIFT_CARD_SKU]

    gift_card = db_session.scalars(select(Item)).one()
    assert (gift_card.sku, gift_card.price_cents) == (GIFT_CARD_SKU, 2500)


def test_a_posted_item_is_seen_by_the_test(db_session: Session) -> None:
    client = TestClient(app)  # no lifespan
    response = client.post("/items", json=TEA)

    assert response.status_code == 201
    assert db_session.scalars(select(Item.sku)).all() == ["TEA-1"]


def test_the_same_sku_again_starts_from_empty(db_session: Session) -> None:
    assert count(db_session, Item) == 0
    assert TestClient(app).post("/items", json=TEA).status_code == 201
    assert count(db_session, Item) == 1


def test_items_the_test_commits_are_served(db_session: Session) -> None:
    db_session.add(Item(sku="COF-1", name="Arabica", price_cents=1100))
    db_session.commit()

    with TestClient(app) as client:
        listed = client.get("/items").json()
    assert [item["sku"] for item in listed] == ["COF-1", GIFT_CARD_SKU]
    assert app.state.items_at_startup == 2


def test_a_duplicate_sku_is_409_and_everything_carries_on(db_session: Session) -> None:
    client = TestClient(app)
    assert client.post("/items", json=TEA).status_code == 201

    duplicate = client.post("/items", json=TEA)
    assert duplicate.status_code == 409

    assert client.post("/items", json={**TEA, "sku": "TEA-2"}).status_code == 201
    assert db_session.scalars(select(Item.sku).order_by(Item.sku)).all() == ["TEA-1", "TEA-2"]
    db_session.add(Item(sku="TEA-3", name="Gyokuro", price_cents=1900))
    db_session.commit()
    assert [item["sku"] for item in client.get("/items").json()] == ["TEA-1", "TEA-2", "TEA-3"]


def test_an_order_queues_a_notification_in_the_background(db_session: Session) -> None:
    item = Item(sku="TEA-1", name="Sencha", price_cents=850)
    db_session.add(item)
    db_session.commit()

    with TestClient(app) as client:
        response = client.post(
            "/orders", json={"item_id": item.id, "quantity": 2, "email": "ada@example.com"}
        )
    assert response.status_code == 201

    notification = db_session.scalars(select(Notification)).one()
    assert notification.order_id == response.json()["id"]
    assert notification.message == "Thank you for ordering 2 x Sencha."


def test_every_table_starts_empty(db_session: Session) -> None:
    assert count(db_session, Item) == 0
    assert count(db_session, Notification) == 0


async def test_the_sync_client_in_an_async_test(async_db_session: AsyncSession) -> None:
    async_db_session.add(Item(sku="TEA-1", name="Sencha", price_cents=850))
    await async_db_session.commit()

    # TestClient blocks this loop while the app runs in the client's own thread and loop.
    client = TestClient(app)
    assert [item["name"] for item in client.get("/items").json()] == ["Sencha"]
    assert client.post("/items", json={**TEA, "sku": "TEA-2"}).status_code == 201

    skus = await async_db_session.scalars(select(Item.sku).order_by(Item.sku))
    assert list(skus) == ["TEA-1", "TEA-2"]
