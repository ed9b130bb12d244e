"""Test data factories (``alchemy_factories``): factory_boy and polyfactory factories
persist through the test's ``db_session`` as their persistence options say, what they
commit is gone after the test, and every factory is put back as it was; bad entries stop
the run with a short message."""

from __future__ import annotations

import pytest
from test_errors import USAGE_ERROR, assert_short_message, run_probed

from conftest import MODELS, Project, output


def assert_nothing_left(project: Project) -> None:
    """What a ``--alchemy-reuse-db`` run left: the schema, no rows; and the application's
    own development database (where the factories' own sessions point) never made."""
    assert project.query("SELECT COUNT(*) FROM users") == [(0,)]
    assert project.query("SELECT COUNT(*) FROM posts") == [(0,)]
    assert not (project.path / "dev.db").exists()


# -- 1. factory_boy ------------------------------------------------------------------------

FACTORY_BOY = """
    import factory
    from factory.alchemy import SQLAlchemyModelFactory

    import models
    from extra import ExtraUserFactory  # imported: not one of this module's factories
    from models import Post, User


    class AppFactory(SQLAlchemyModelFactory):
        class Meta:
            abstract = True
            sqlalchemy_session_factory = models.SessionLocal  # the app's development database


    class UserFactory(AppFactory):
        class Meta:
            model = User
            sqlalchemy_session_persistence = "commit"

        email = factory.Sequence(lambda n: f"user{n}@factory.test")


    class PostFactory(AppFactory):
        class Meta:
            model = Post
            sqlalchemy_session_persistence = "flush"

        title = factory.Sequence(lambda n: f"post {n}")
        author = factory.SubFactory(UserFactory)


    class DraftFactory(SQLAlchemyModelFactory):
        class Meta:
            model = Post
            sqlalchemy_session = models.ScopedSession  # persistence None: only added

        title = "draft"
        author = factory.SubFactory(UserFactory)
"""

FACTORY_BOY_EXTRA = """
    from factory.alchemy import SQLAlchemyModelFactory

    from models import User


    class ExtraUserFactory(SQLAlchemyModelFactory):  # no session of its own
        class Meta:
            model = User

        email = "extra@factory.test"
"""

FACTORY_BOY_TESTS = """
    import pytest
    from sqlalchemy import func, inspect, select

    from extra import ExtraUserFactory
    from factories import AppFactory, DraftFactory, PostFactory, UserFactory
    from models import Post, User

    ALL = [AppFactory, UserFactory, PostFactory, DraftFactory, ExtraUserFactory]


    def sessions():
        return [
            (f.__name__, f._meta.sqlalchemy_session, f._meta.sqlalchemy_session_factory)
            for f in ALL
        ]


    BEFORE = sessions()  # at collection, before any test ran


    @pytest.fixture(scope="module", autouse=True)
    def put_back():
        assert sessions() == BEFORE
        yield
        assert sessions() == BEFORE


    def counts(session):
        return (
            session.scalar(select(func.count()).select_from(User)),
            session.scalar(select(func.count()).select_from(Post)),
        )


    def test_listed(alchemy_factories):
        assert list(alchemy_factories) == [UserFactory, PostFactory, DraftFactory, ExtraUserFactory]


    def test_commit(db_session):
        user = UserFactory()
        assert UserFactory._meta.sqlalchemy_session is db_session
        assert UserFactory._meta.sqlalchemy_session_factory is None
        assert inspect(user).persistent
        assert not db_session.in_transaction()  # committed
        assert db_session.scalars(select(User.email)).all() == [user.email]


    def test_flush_and_none(db_session):
        post = PostFactory()  # its author: UserFactory, which commits
        assert inspect(post).persistent and post.id is not None
        assert db_session.in_transaction()  # flushed, not committed
        draft = DraftFactory()
        assert draft in db_session.new and inspect(draft.author).persistent
        extra = ExtraUserFactory()
        assert extra in db_session.new
        db_session.commit()
        assert counts(db_session) == (3, 2)


    def test_next_test_starts_empty(db_session):
        assert counts(db_session) == (0, 0)
"""


def test_factory_boy_persists_through_the_test_session(project: Project) -> None:
    project.write("models.py", MODELS)
    project.write("factories.py", FACTORY_BOY)
    project.write("extra.py", FACTORY_BOY_EXTRA)
    project.write("test_factory_boy.py", FACTORY_BOY_TESTS)
    project.ini(
        alchemy_metadata="models:Base", alchemy_factories=["factories", "extra:ExtraUserFactory"]
    )
    result = project.run("-p", "no:randomly", "--alchemy-reuse-db")
    result.assert_outcomes(passed=4)
    assert_nothing_left(project)


# -- 2. polyfactory ------------------------------------------------------------------------

POLYFACTORY = """
    import itertools
    from typing import Generic, TypeVar

    from polyfactory import Use
    from polyfactory.factories.sqlalchemy_factory import (
        SQLAlchemyFactory, SQLAlchemyPersistenceMethod,
    )
    from sqlalchemy.ext.asyncio import async_sessionmaker

    import models
    from models import Post, User

    T = TypeVar("T")
    numbers = itertools.count()


    class AppFactory(Generic[T], SQLAlchemyFactory[T]):
        __is_base_factory__ = True
        __session__ = models.SessionLocal  # the app's development database
        __set_primary_key__ = False
        __set_relationships__ = False


    class UserFactory(AppFactory[User]):
        __set_as_default_factory_for_type__ = True
        email = Use(lambda: f"user{next(numbers)}@default.test")


    class PostFactory(AppFactory[Post]):
        __session__ = models.ScopedSession
        __async_session__ = async_sessionmaker()
        __persistence_method__ = SQLAlchemyPersistenceMethod.FLUSH
        __set_relationships__ = True
        __set_foreign_keys__ = False
        title = Use(lambda: "a post")
"""

POLYFACTORY_TESTS = """
    import pytest
    from sqlalchemy import func, inspect, select

    import models
    from factories import AppFactory, PostFactory, UserFactory
    from models import Post, User

    MISSING = object()


    def sessions():
        return [
            (name, vars(f).get("__session__", MISSING), vars(f).get("__async_session__", MISSING))
            for name, f in [("app", AppFactory), ("user", UserFactory), ("post", PostFactory)]
        ]


    BEFORE = sessions()  # at collection, before any test ran


    @pytest.fixture(scope="module", autouse=True)
    def put_back():
        assert sessions() == BEFORE
        yield
        assert sessions() == BEFORE


    def counts(session):
        return (
            session.scalar(select(func.count()).select_from(User)),
            session.scalar(select(func.count()).select_from(Post)),
        )


    def test_listed(alchemy_factories):
        assert list(alchemy_factories) == [UserFactory, PostFactory]


    def test_create_sync(db_session):
        assert UserFactory.__session__ is db_session and PostFactory.__session__ is db_session
        assert PostFactory.__async_session__ is None
        assert AppFactory.__session__ is models.SessionLocal  # a base factory: not bound
        post = PostFactory.create_sync()
        assert inspect(post).persistent and db_session.in_transaction()  # flushed
        # The author was built by the default factory for User.
        assert post.author.email.endswith("@default.test")
        users = UserFactory.create_batch_sync(2)  # commits
        assert not db_session.in_transaction()
        assert sorted(db_session.scalars(select(User.email))) == sorted(
            u.email for u in [post.author, *users]
        )
        assert counts(db_session) == (3, 1)


    @pytest.mark.asyncio
    async def test_create_async(db_session, async_db_session):
        assert PostFactory.__async_session__ is async_db_session
        post = await PostFactory.create_async()  # polyfactory's async persistence
        assert inspect(post).persistent
        await async_db_session.commit()
        assert counts(db_session) == (1, 1)  # one transaction for both fronts


    def test_next_test_starts_empty(db_session):
        assert counts(db_session) == (0, 0)
"""

#: A sub-folder whose db_session is a scoped_session (as Flask-SQLAlchemy's db.session).
SCOPED_CONFTEST = """
    import pytest
    from sqlalchemy.orm import scoped_session


    @pytest.fixture
    def db_session(db_session):
        scoped = scoped_session(lambda: db_session)
        yield scoped
        scoped.remove()
"""

SCOPED_TESTS = """
    from sqlalchemy import inspect

    from factories import PostFactory


    def test_scoped_session_is_not_removed(db_session):
        session = db_session()
        post = PostFactory.create_sync()
        assert PostFactory.__session__ is session
        assert inspect(post).session is session  # polyfactory did not remove() it
"""


def test_polyfactory_persists_through_the_test_session(project: Project) -> None:
    project.write("models.py", MODELS)
    project.write("factories.py", POLYFACTORY)
    project.write("test_polyfactory.py", POLYFACTORY_TESTS)
    project.write("scoped/conftest.py", SCOPED_CONFTEST)
    project.write("scoped/test_scoped.py", SCOPED_TESTS)
    project.ini(alchemy_metadata="models:Base", alchemy_factories="factories")
    result = project.run("-p", "no:randomly", "--alchemy-reuse-db")
    result.assert_outcomes(passed=5)
    assert_nothing_left(project)


# -- 3. unset: nothing is bound and no database is used ------------------------------------


@pytest.mark.backends("sqlite")
def test_unset_requests_nothing(project: Project) -> None:
    project.write("models.py", MODELS)
    project.write("factories.py", POLYFACTORY)
    project.write(
        "test_plain.py",
        """
        import models
        from factories import UserFactory

        def test_plain(alchemy_factories):
            assert list(alchemy_factories) == []
            assert UserFactory.__session__ is models.SessionLocal
        """,
    )
    project.ini(alchemy_metadata="models:Base")
    result = project.run("--setup-show")
    result.assert_outcomes(passed=1)
    text = output(result)
    assert "db_session" not in text and "_alchemy_isolation" not in text, text
    # No summary line: no test used a database.
    assert not [line for line in result.stdout.lines if line.endswith((" created", " reused"))]


# -- 4. bad entries ------------------------------------------------------------------------

BAD = """
    import factory  # noqa: F401
    from factory.alchemy import SQLAlchemyModelFactory

    from models import User


    class AbstractFactory(SQLAlchemyModelFactory):
        class Meta:
            abstract = True
"""

NEEDS_POLYFACTORY = """
    from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory

    from models import User


    class UserFactory(SQLAlchemyFactory[User]):
        pass
"""

#: Makes ``import polyfactory`` fail in the inner run, as when it is not installed (its
#: pytest plugin has imported some of it already).
NO_POLYFACTORY = """
    import sys

    for name in [*sys.modules, "polyfactory"]:
        if name.partition(".")[0] == "polyfactory":
            sys.modules[name] = None
"""


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("nosuchmodule:UserFactory", "importing 'nosuchmodule' failed"),
        ("bad:NoSuch", "'bad' has no attribute 'NoSuch'"),
        ("models:User", "is the class User, not a factory_boy SQLAlchemyModelFactory"),
        ("bad:AbstractFactory", "is an abstract factory_boy factory"),
        ("bad", "the module defines no factory_boy SQLAlchemyModelFactory"),
        ("needs_polyfactory", "needs polyfactory, which is not installed"),
        ("the fixture", "the alchemy_factories fixture's item 2 ('models:User')"),
    ],
)
def test_bad_entry_stops_the_run(project: Project, entry: str, problem: str) -> None:
    project.write("models.py", MODELS)
    project.write("bad.py", BAD)
    project.write("needs_polyfactory.py", NEEDS_POLYFACTORY)
    if entry == "needs_polyfactory":
        project.write("conftest.py", NO_POLYFACTORY)
    if entry == "the fixture":
        # An overriding fixture is checked too, before the first test uses it.
        project.write(
            "conftest.py",
            """
            import pytest

            @pytest.fixture(scope="session")
            def alchemy_factories(alchemy_factories):
                return [*alchemy_factories, "models:User"]
            """,
        )
        entry = "needs_polyfactory"
    project.ini(alchemy_metadata="models:Base", alchemy_factories=entry)
    project.write("test_db.py", "def test_one():\n    pass\n")
    result, probe = run_probed(project)
    assert result.ret == USAGE_ERROR, output(result)
    assert_short_message(result, "alchemy_factories", problem, "Fix:")
    if "fixture" not in problem:
        assert repr(entry) in output(result)
    assert probe.seen == set(), f"the run created {probe.seen} before it stopped"
    assert project.databases() == set()
