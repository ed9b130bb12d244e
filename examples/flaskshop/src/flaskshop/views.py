"""The shop's JSON API. Views commit their work, and turn a unique-constraint
violation into a rolled-back 409. Creating a product also writes an ``AuditEvent`` to
the ``audit`` bind, in the same commit."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, request
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import AuditEvent, Category, Product

bp = Blueprint("shop", __name__)


def _payload(*fields: str) -> dict[str, Any]:
    data = request.get_json(silent=True) or {}
    missing = [f for f in fields if f not in data]
    if missing:
        abort(400, description=f"missing: {', '.join(missing)}")
    return data


@bp.get("/categories")
def list_categories() -> Any:
    rows = db.session.scalars(select(Category).order_by(Category.name))
    return [c.to_dict() for c in rows]


@bp.post("/categories")
def create_category() -> Any:
    data = _payload("name")
    category = Category(name=data["name"])
    db.session.add(category)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return {"error": f"category {data['name']!r} exists"}, 409
    return category.to_dict(), 201


@bp.get("/categories/<int:category_id>/products")
def list_products(category_id: int) -> Any:
    category = db.get_or_404(Category, category_id)
    return [p.to_dict() for p in category.products]


def _product(category: Category, data: dict[str, Any]) -> Product:
    return Product(
        sku=data["sku"], name=data["name"], price_cents=data["price_cents"], category=category
    )


@bp.post("/categories/<int:category_id>/products")
def create_product(category_id: int) -> Any:
    category = db.get_or_404(Category, category_id)
    product = _product(category, _payload("sku", "name", "price_cents"))
    db.session.add(product)
    # The audit bind's row goes in the same commit: db.session writes each model to
    # its bind's database.
    db.session.add(AuditEvent(action="product.created", product_sku=product.sku))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return {"error": f"sku {product.sku!r} exists"}, 409
    return product.to_dict(), 201


@bp.post("/categories/<int:category_id>/products/import")
def import_products(category_id: int) -> Any:
    """Add a list of products; each in its own savepoint, so that a duplicate SKU
    skips that product only. One commit at the end."""
    category = db.get_or_404(Category, category_id)
    created, skipped = [], []
    for item in request.get_json(silent=True) or []:
        try:
            with db.session.begin_nested():
                db.session.add(_product(category, item))
        except IntegrityError:
            skipped.append(item["sku"])
        else:
            created.append(item["sku"])
    db.session.commit()
    return {"created": created, "skipped": skipped}


@bp.get("/stats")
def stats() -> Any:
    count = db.session.scalar(select(func.count(Product.id)))
    return {"categories": db.session.query(Category).count(), "products": count}
