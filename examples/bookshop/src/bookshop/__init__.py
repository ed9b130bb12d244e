"""A tiny bookshop: catalogue, customers, orders and a sales report."""

__version__ = "0.1.0"
