"""The ``audit`` bind: a second database, written by the product view in the same
``db.session.commit()`` as the product. pytest-alchemy gives it a test database of its
own (``test_<base>_audit``) and rolls back both after each test."""

from __future__ import annotations

from sqlalchemy import func, select

from flaskshop.extensions import db
from flaskshop.models import AuditEvent, Category, Product


def test_creating_a_product_writes_an_audit_event(flask_client, db_session):
    category = Category(name="Teas")
    db_session.add(category)
    db_session.commit()

    url = f"/categories/{category.id}/products"
    sencha = {"sku": "T-1", "name": "Sencha", "price_cents": 450}
    assert flask_client.post(url, json=sencha).status_code == 201
    events = db_session.scalars(select(AuditEvent)).all()
    assert [(e.action, e.product_sku) for e in events] == [("product.created", "T-1")]
    assert events[0].created_at is not None
    # A duplicate's rollback takes its audit event with it.
    assert flask_client.post(url, json=sencha).status_code == 409
    assert db_session.scalar(select(func.count(AuditEvent.id))) == 1

    # The event is in the audit bind's database, not the shop's.
    audit_engine = db.engines["audit"]
    assert audit_engine.url != db.engine.url
    assert db_session.get_bind(mapper=AuditEvent.__mapper__) is audit_engine
    with audit_engine.connect() as audit:
        assert audit.scalar(select(func.count()).select_from(AuditEvent.__table__)) == 1


def test_the_next_test_sees_nothing_in_either_database(flask_app, db_session):
    assert db_session.scalar(select(func.count(AuditEvent.id))) == 0
    assert db_session.scalar(select(func.count(Product.id))) == 0
    assert db_session.scalar(select(func.count(Category.id))) == 0
