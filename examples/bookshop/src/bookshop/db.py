"""Database wiring for the bookshop application.

The engine is created at import time, as most applications do.  Point the
application at another database with the ``BOOKSHOP_DATABASE_URL``
environment variable; the default is a SQLite file in the working directory.
"""

from __future__ import annotations

import os

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

DEFAULT_DATABASE_URL = "sqlite:///bookshop.db"

engine = create_engine(os.environ.get("BOOKSHOP_DATABASE_URL", DEFAULT_DATABASE_URL))

SessionLocal = sessionmaker(bind=engine)
