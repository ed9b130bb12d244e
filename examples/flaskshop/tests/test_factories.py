"""Test data from the factory_boy factories in ``tests/factories.py``, bound to the
test's ``db_session`` by the ``alchemy_factories`` setting: no session is passed to
them, and what they commit is gone after the test like everything else."""

from __future__ import annotations

from factories import CategoryFactory, ProductFactory
from sqlalchemy import func, select

from flaskshop.models import AuditEvent, Category, Product


def test_factory_rows_are_seen_by_the_views(flask_client):
    teas = CategoryFactory(name="Teas")  # committed
    ProductFactory.create_batch(2, category=teas)  # flushed into the same session
    ProductFactory(sku="C-1", category=CategoryFactory(name="Coffee"))

    assert flask_client.get("/stats").json == {"categories": 2, "products": 3}
    listed = flask_client.get(f"/categories/{teas.id}/products").json
    assert [p["category_id"] for p in listed] == [teas.id, teas.id]
    # Rows made by factories are not made by the view: no audit events.
    assert AuditEvent.query.count() == 0


def test_a_subfactory_makes_the_category(db_session):
    product = ProductFactory()
    assert db_session.get(Category, product.category_id) is product.category
    assert db_session.scalar(select(func.count(Category.id))) == 1


def test_a_views_rollback_undoes_what_a_factory_only_flushed(flask_client, db_session):
    # As in production: ProductFactory flushes without committing, so the view's
    # rollback after its duplicate insert undoes the flushed product too, while the
    # category CategoryFactory committed stays.
    existing = ProductFactory(sku="DUP-1")
    url = f"/categories/{existing.category_id}/products"
    duplicate = {"sku": "DUP-1", "name": "Again", "price_cents": 1}
    assert flask_client.post(url, json=duplicate).status_code == 409
    assert db_session.scalars(select(Product.sku)).all() == []
    assert db_session.scalars(select(Category.name)).all() == [existing.category.name]
    assert db_session.scalar(select(func.count(AuditEvent.id))) == 0
