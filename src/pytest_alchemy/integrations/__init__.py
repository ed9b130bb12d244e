"""Bindings to other libraries that work without pytest (test data factories...)."""
