"""The core works without pytest's fixtures: ``IsolatedTransaction`` routes engines and
sessionmakers into one transaction and rolls everything back, whatever the code did."""

from __future__ import annotations

from conftest import Project

SCRIPT = """
import sys
from sqlalchemy import String, create_engine, func, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from pytest_alchemy import IsolatedTransaction

class Base(DeclarativeBase):
    pass

class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(50), unique=True)

url = sys.argv[1]
engine = create_engine(url)
Base.metadata.create_all(engine)
app_engine = create_engine(url)
SessionLocal = sessionmaker(bind=app_engine)
Unbound = sessionmaker()
count = select(func.count()).select_from(User)
try:
    with IsolatedTransaction(engine) as tx:
        tx.route_engine(app_engine)
        tx.route_sessionmaker(Unbound)
        with SessionLocal() as session:
            session.add(User(email="session@x"))
            session.commit()
        raw = app_engine.raw_connection()
        cursor = raw.cursor()
        cursor.execute("INSERT INTO users (email) VALUES ('raw@x')")
        cursor.close()
        raw.commit()
        raw.close()
        with Unbound() as session:
            session.add(User(email="unbound@x"))
            session.commit()
        tx.connection.execute(insert(User), {"email": "tx@x"})
        seen = sorted(tx.session().scalars(select(User.email)))
        assert seen == ["raw@x", "session@x", "tx@x", "unbound@x"], seen
    assert Unbound.kw.get("bind") is None
    with engine.connect() as conn:
        print("LEFT", conn.scalar(count))
    with app_engine.connect() as conn:  # a real connection again
        conn.execute(insert(User), {"email": "real@x"})
        conn.commit()
finally:
    engine.dispose()
    app_engine.dispose()
"""


def test_isolated_transaction_without_pytest(project: Project) -> None:
    name = f"core_{project.backend.base}"  # dropped with the backend's other databases
    project.backend.create_foreign(project.path, name)
    url = project.backend.test_db_url(project.path, name)
    script = project.write("core_script.py", SCRIPT)
    result = project.pytester.runpython_c(
        f"import runpy, sys; sys.argv = ['x', {url!r}]; runpy.run_path({str(script)!r})"
    )
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["LEFT 0"])
    assert project.backend.query(project.path, "SELECT email FROM users", name) == [("real@x",)]
    assert project.backend.query(project.path, "SELECT id FROM precious", name) == [(42,)]
