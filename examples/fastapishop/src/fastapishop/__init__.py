"""A tiny FastAPI shop on async SQLAlchemy: items, orders and their notifications."""

__version__ = "0.1.0"
