"""SQLModel tables of the shop; ``SQLModel.metadata`` is the schema (``create_all``).

No ``from __future__ import annotations`` here: SQLModel reads the annotations at class
creation, so forward references are quoted instead.
"""

from sqlmodel import Field, Relationship, SQLModel


class Category(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)

    products: list["Product"] = Relationship(back_populates="category")


class ProductBase(SQLModel):
    name: str = Field(max_length=200)
    price_cents: int = Field(ge=0)


class Product(ProductBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    category_id: int = Field(foreign_key="category.id", index=True)

    category: Category = Relationship(back_populates="products")


class ProductCreate(ProductBase):
    """What a client sends to add a product (no id, the category by name)."""

    category_name: str


class PriceLine(SQLModel):
    category: str
    product: str
    price_cents: int
