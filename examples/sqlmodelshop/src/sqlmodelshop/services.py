"""The shop's sync service layer: each function that writes commits its own work."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from sqlmodelshop import db
from sqlmodelshop.models import Category, Product, ProductCreate


class DuplicateCategory(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"a category named {name!r} exists already")
        self.name = name


class UnknownCategory(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"no category named {name!r}")
        self.name = name


def add_category(session: Session, name: str) -> Category:
    category = Category(name=name.strip())
    session.add(category)
    try:
        session.commit()
    except IntegrityError:
        # The unique constraint decides; a SELECT first would race.
        session.rollback()
        raise DuplicateCategory(category.name) from None
    session.refresh(category)
    return category


def add_product(session: Session, data: ProductCreate) -> Product:
    category = session.exec(select(Category).where(Category.name == data.category_name)).first()
    if category is None:
        raise UnknownCategory(data.category_name)
    product = Product.model_validate(data, update={"category_id": category.id})
    session.add(product)
    session.commit()
    session.refresh(product)
    return product


def products_in(session: Session, category: str) -> list[Product]:
    query = (
        select(Product)
        .join(Category)
        .where(Category.name == category)
        .order_by(col(Product.price_cents), col(Product.name))
    )
    return list(session.exec(query))


def cheapest(limit: int = 3) -> list[str]:
    """Names of the cheapest products, for the front page, in a session of its own."""
    with Session(db.engine) as session:
        query = select(Product.name).order_by(col(Product.price_cents)).limit(limit)
        return list(session.exec(query))
