"""A tiny SQLModel catalogue: categories and products, sync and async."""

__version__ = "0.1.0"
