"""Commit, rollback, savepoints and errors inside a test behave as in production, and
nothing is left behind for the next test."""

from __future__ import annotations

from conftest import Project


def test_commits_are_rolled_back_after_each_test(models_project: Project) -> None:
    models_project.write(
        "test_commit.py",
        """
        import pytest
        from sqlalchemy import func, select
        from models import User

        @pytest.mark.parametrize("n", range(3))
        def test_commit(db_session, n):
            assert db_session.scalar(select(func.count()).select_from(User)) == 0
            db_session.add(User(email="a@example.com"))
            db_session.commit()
            assert db_session.scalar(select(func.count()).select_from(User)) == 1
        """,
    )
    result = models_project.run("--alchemy-reuse-db")
    result.assert_outcomes(passed=3)
    assert models_project.query("SELECT COUNT(*) FROM users") == [(0,)]


def test_rollback_keeps_rows_from_before_it(models_project: Project) -> None:
    models_project.write(
        "test_rollback.py",
        """
        from sqlalchemy import select
        from models import User

        def test_rollback(db_session):
            db_session.add(User(email="kept@example.com"))
            db_session.commit()
            db_session.add(User(email="dropped@example.com"))
            db_session.flush()
            db_session.rollback()
            assert db_session.scalars(select(User.email)).all() == ["kept@example.com"]
        """,
    )
    models_project.run().assert_outcomes(passed=1)


def test_integrity_error_then_continue(models_project: Project) -> None:
    models_project.write(
        "test_integrity.py",
        """
        import pytest
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError
        from models import User

        def test_duplicate(db_session):
            db_session.add(User(email="a@example.com"))
            db_session.commit()
            db_session.add(User(email="a@example.com"))
            with pytest.raises(IntegrityError):
                db_session.commit()
            db_session.rollback()
            db_session.add(User(email="b@example.com"))
            db_session.commit()
            assert sorted(db_session.scalars(select(User.email))) == [
                "a@example.com", "b@example.com"]

        def test_next_test_starts_empty(db_session):
            assert db_session.scalars(select(User)).all() == []
        """,
    )
    models_project.run("-p", "no:randomly").assert_outcomes(passed=2)


def test_nested_savepoints(models_project: Project) -> None:
    models_project.write(
        "test_nested.py",
        """
        from sqlalchemy import select
        from models import User

        def test_nested(db_session):
            db_session.add(User(email="outer@example.com"))
            with db_session.begin_nested():
                db_session.add(User(email="inner@example.com"))
            savepoint = db_session.begin_nested()
            db_session.add(User(email="undone@example.com"))
            db_session.flush()
            savepoint.rollback()
            db_session.commit()
            assert sorted(db_session.scalars(select(User.email))) == [
                "inner@example.com", "outer@example.com"]
        """,
    )
    models_project.run("--alchemy-reuse-db").assert_outcomes(passed=1)
    assert models_project.query("SELECT COUNT(*) FROM users") == [(0,)]


def test_failing_test_leaves_nothing(models_project: Project) -> None:
    models_project.write(
        "test_fail.py",
        """
        from sqlalchemy import select
        from models import User

        def test_fails(db_session):
            db_session.add(User(email="a@example.com"))
            db_session.commit()
            raise RuntimeError("boom")

        def test_after(db_session):
            assert db_session.scalars(select(User)).all() == []
        """,
    )
    models_project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(
        passed=1, failed=1
    )
    assert models_project.query("SELECT COUNT(*) FROM users") == [(0,)]
