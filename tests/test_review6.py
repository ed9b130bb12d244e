"""Defects found reviewing issue 6 (branch review6): each test fails against the code
as merged, and says what should happen instead."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from conftest import Project

# -- the `_2` fallback: the guard against unrouted engines follows only the new name ---------

LAZY_APP = """
import os
DATABASE_URL = os.environ["APP_DATABASE_URL"]  # read once, at import, as settings objects do
"""

LAZY_TEST = """
import os, time
from sqlalchemy import create_engine, text
import settings

def test_lazy_engine(db_session):
    db_session.execute(text("select 1"))
    time.sleep(float(os.environ.get("RV_SLEEP", "0")))
    if os.environ.get("RV_WRITE"):
        engine = create_engine(settings.DATABASE_URL)  # made lazily, not routed
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id, email) VALUES (999, 'x')"))
"""


def test_unrouted_engine_cannot_write_into_another_runs_database(project: Project) -> None:
    """A run that took ``test_<base>_2`` because another run holds ``test_<base>``: an
    engine the application made from the URL it read at import (the primary name, set in
    ``alchemy_url_env`` before the claim was taken) is not stopped by the guard (which
    now only knows ``_2``) and commits into the other run's database, which that run keeps
    with --alchemy-reuse-db and marks as fresh. In a run without contention the same
    engine is stopped with an IsolationError."""
    from conftest import MODELS

    project.write("models.py", MODELS)
    project.write("settings.py", LAZY_APP)
    project.ini(alchemy_metadata="models:Base", alchemy_url_env="APP_DATABASE_URL")
    project.write("test_lazy.py", LAZY_TEST)
    args = [*project.backend.args(), "-p", "no:cacheprovider", "-p", "no:randomly"]
    env = {**os.environ, "RV_SLEEP": "8"}
    holder = subprocess.Popen(
        [sys.executable, "-m", "pytest", *args, "--alchemy-reuse-db"],
        cwd=project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(4)  # the holder has claimed test_<base> and sleeps in its test
        env = {**os.environ, "RV_WRITE": "1"}
        second = subprocess.run(
            [sys.executable, "-m", "pytest", *args],
            cwd=project.path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        holder.wait(60)
    assert "is in use by another run" in second.stdout, second.stdout
    # The other run's kept database must not have the row.
    assert project.query("SELECT id FROM users WHERE id = 999") == []
    # And the second run must have been told, as it is without contention.
    assert second.returncode != 0, second.stdout
