"""factory_boy factories for the shop's models.

No session here: the ``alchemy_factories`` line in pyproject.toml binds every factory
this module defines to the test's ``db_session`` (``db.session()`` of the test's app
context) for each test, so what they create is rolled back after it.
"""

from __future__ import annotations

import factory
from factory.alchemy import SQLAlchemyModelFactory

from flaskshop.models import Category, Product


class CategoryFactory(SQLAlchemyModelFactory):
    class Meta:
        model = Category
        # Committed, as a view would: requests see it at once.
        sqlalchemy_session_persistence = "commit"

    name = factory.Sequence(lambda n: f"Category {n}")


class ProductFactory(SQLAlchemyModelFactory):
    class Meta:
        model = Product
        # Flushed only: the rows are in the test's transaction, not committed.
        sqlalchemy_session_persistence = "flush"

    sku = factory.Sequence(lambda n: f"SKU-{n:04d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    price_cents = 450
    category = factory.SubFactory(CategoryFactory)
