"""Products: a foreign key, savepoints inside a view, and ``db.session`` used the way
the application uses it (``flask_app`` pushes the app context)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from flaskshop.extensions import db
from flaskshop.models import Category, Product


@pytest.fixture
def category(db_session):
    category = Category(name="Teas")
    db_session.add(category)
    db_session.commit()
    return category


def product(sku, price_cents=450):
    return {"sku": sku, "name": f"Tea {sku}", "price_cents": price_cents}


def test_create_and_list_products(flask_client, category):
    url = f"/categories/{category.id}/products"
    assert flask_client.post(url, json=product("T-2")).status_code == 201
    assert flask_client.post(url, json=product("T-1")).status_code == 201
    assert [p["sku"] for p in flask_client.get(url).json] == ["T-1", "T-2"]
    assert flask_client.post(url, json=product("T-1")).status_code == 409
    assert flask_client.get("/stats").json == {"categories": 1, "products": 2}


def test_unknown_category_is_404(flask_client):
    assert flask_client.post("/categories/999/products", json=product("X")).status_code == 404


def test_import_skips_duplicates_in_savepoints(flask_client, category, db_session):
    db_session.add(Product(sku="T-2", name="Old", price_cents=1, category=category))
    db_session.commit()
    response = flask_client.post(
        f"/categories/{category.id}/products/import",
        json=[product("T-1"), product("T-2"), product("T-3")],
    )
    assert response.json == {"created": ["T-1", "T-3"], "skipped": ["T-2"]}
    assert sorted(p.sku for p in Product.query.all()) == ["T-1", "T-2", "T-3"]


def test_nested_transaction_in_the_test(flask_app, category):
    db.session.add(Product(sku="KEEP", name="Kept", price_cents=1, category=category))
    savepoint = db.session.begin_nested()
    db.session.add(Product(sku="DROP", name="Dropped", price_cents=1, category=category))
    db.session.flush()
    savepoint.rollback()
    db.session.commit()
    assert [p.sku for p in Product.query.all()] == ["KEEP"]


def test_schema_comes_from_the_migrations_not_the_dev_database(flask_app, db_session):
    # The multiple-database migrations ran on both databases, each with its own
    # alembic_version table.
    assert db_session.execute(text("SELECT version_num FROM alembic_version")).all() == [("0003",)]
    with db.engines["audit"].connect() as audit:
        assert audit.execute(text("SELECT version_num FROM alembic_version")).all() == [("0003",)]
    assert "flaskshop-dev" not in flask_app.config["SQLALCHEMY_DATABASE_URI"]
    assert "flaskshop-dev" not in str(db.engine.url)
    assert "flaskshop-audit-dev" not in str(db.engines["audit"].url)
    assert Product.query.count() == 0
