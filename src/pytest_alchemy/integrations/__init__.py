"""Integrations with application frameworks and libraries (Flask-SQLAlchemy, test-data
factories); each imports its framework only when used."""
