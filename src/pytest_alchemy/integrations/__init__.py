"""Integrations with application frameworks and libraries (Flask-SQLAlchemy, test data
factories) that work without pytest; each imports its library only when used."""
