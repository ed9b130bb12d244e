"""Layered isolation: what a fixture of any scope writes (through a routed engine, a
sessionmaker, a scoped_session or ``db_engine``) is seen by the tests inside that scope
and is gone when the scope ends; each test undoes only its own work on top. After a
``--alchemy-reuse-db`` run every table is as the schema build left it: empty."""

from __future__ import annotations

import textwrap

import pytest

from conftest import Project, output
from isolation_support import (
    assert_all_empty,
    assert_isolation_error,
    module_source,
    only_crash,
    run_bounded,
    worker_databases,
    write_tests,
)

# -- 1. a fixture of each scope, written through each kind of application object --------

#: How a wide fixture writes its row.
WRITERS = {
    "engine": """
        with models.engine.begin() as conn:
            add(conn, EMAIL)
    """,
    "sessionmaker": """
        with models.SessionLocal() as session:
            session.add(User(email=EMAIL))
            session.commit()
    """,
    "scoped_session": """
        models.ScopedSession.add(User(email=EMAIL))
        models.ScopedSession.commit()
        models.ScopedSession.remove()
    """,
    "db_engine": """
        with db_engine.begin() as conn:
            add(conn, EMAIL)
    """,
}

#: Which tests are inside the fixture's scope, for each scope: (in the class, elsewhere
#: in the module, in the package's other module, in the other package).
INSIDE = {
    "class": (True, False, False, False),
    "module": (True, True, False, False),
    "package": (True, True, True, False),
    "session": (True, True, True, True),
}


def scoped_project(project: Project, scope: str, writer: str) -> int:
    """Two packages; ``rows`` (scope ``scope``) writes one user. Every test asks for
    ``rows`` where it is inside its scope (so that any order gives the same answers) and
    checks what it sees. Returns the number of tests."""
    email = f"{scope}@x"
    body = textwrap.indent(textwrap.dedent(WRITERS[writer]).strip(), "    ")
    fixture = module_source(
        f'@pytest.fixture(scope="{scope}")\ndef rows(db_engine):\n    EMAIL = "{email}"\n{body}\n',
        footer=False,
    )
    # A session fixture is defined at the root, so that the other package can ask for it.
    project.write("conftest.py" if scope == "session" else "pkg_a/conftest.py", fixture)
    project.write("pkg_a/__init__.py", "")
    project.write("pkg_b/__init__.py", "")

    def test(name: str, inside: bool) -> str:
        wanted = [email] if inside else []
        args = "rows, db_session" if inside else "db_session"
        return f"def {name}({args}):\n    assert emails(db_session) == {wanted!r}\n"

    in_class, in_module, in_package, in_session = INSIDE[scope]
    in_the_class = textwrap.dedent(
        f"""
        class TestInside:
            def test_sees_the_row(self, rows, db_session):
                assert emails(db_session) == [{email!r}]

            def test_deletes_the_row(self, rows, db_session):
                db_session.execute(delete(User))
                db_session.commit()
                assert emails(db_session) == []
                with models.SessionLocal() as session:
                    assert emails(session) == []

            def test_sees_the_row_again(self, rows, db_session):
                assert emails(db_session) == [{email!r}]
                with models.engine.connect() as conn:
                    assert conn.scalars(select(User.email)).all() == [{email!r}]
        """
    )
    rest = test("test_rest_of_the_module", in_module)
    write_tests(project, "pkg_a/test_a1.py", in_the_class + "\n\n" + rest, footer=False)
    write_tests(project, "pkg_a/test_a2.py", test("test_other_module", in_package), footer=False)
    write_tests(project, "pkg_b/test_b.py", test("test_other_package", in_session), footer=False)
    assert in_class
    return 6


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("scope", INSIDE)
def test_wide_fixture_rows_live_for_their_scope(
    models_project: Project, scope: str, writer: str
) -> None:
    count = scoped_project(models_project, scope, writer)
    for _ in range(2):  # the second run inserts the same unique email again
        result = models_project.run("-p", "no:randomly", "--alchemy-reuse-db")
        result.assert_outcomes(passed=count)
        assert_all_empty(models_project)


@pytest.mark.parametrize("scope", INSIDE)
def test_layers_in_random_order(models_project: Project, scope: str) -> None:
    pytest.importorskip("pytest_randomly")
    count = scoped_project(models_project, scope, "engine")
    for seed in ("1", "2", "3"):
        result = models_project.run(
            "-p", "randomly", f"--randomly-seed={seed}", "--alchemy-reuse-db"
        )
        result.assert_outcomes(passed=count)
        assert f"Using --randomly-seed={seed}" in output(result)
        assert_all_empty(models_project)


@pytest.mark.parametrize("scope", INSIDE)
def test_layers_with_xdist(models_project: Project, scope: str) -> None:
    count = scoped_project(models_project, scope, "engine")
    for _ in range(2):
        result, _seconds = run_bounded(
            models_project, "-n", "2", "-p", "no:randomly", "--alchemy-reuse-db"
        )
        result.assert_outcomes(passed=count)
        for name in worker_databases(models_project):
            assert_all_empty(models_project, name)


# -- 2. module_db_session and class_db_session, stacked on a session fixture -------------

STACKED_CONFTEST = """
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session
import models

@pytest.fixture(scope="session")
def session_user():
    with models.engine.begin() as conn:
        conn.execute(insert(models.User), {"email": "session@x"})

@pytest.fixture(scope="module")
def module_user(session_user, module_db_session):
    assert isinstance(module_db_session, Session)
    user = models.User(email="module@x")
    module_db_session.add(user)
    module_db_session.commit()
    return user

@pytest.fixture(scope="class")
def class_post(module_user, class_db_session):
    assert isinstance(class_db_session, Session)
    author = class_db_session.get(models.User, module_user.id)
    assert author.email == "module@x"
    post = models.Post(title="class post", author=author)
    class_db_session.add(post)
    class_db_session.commit()
    return post
"""


def test_module_and_class_db_sessions(models_project: Project) -> None:
    models_project.write("conftest.py", STACKED_CONFTEST)

    def titles(n: int) -> str:
        return "['class post']" if n else "[]"

    write_tests(
        models_project,
        "test_a.py",
        f"""
        def titles(session):
            return session.scalars(select(Post.title)).all()

        class TestWithPost:
            def test_sees_all_layers(self, class_post, db_session):
                assert emails(db_session) == ["module@x", "session@x"]
                assert titles(db_session) == {titles(1)}
                db_session.add(User(email="test@x"))
                db_session.commit()

            def test_removes_the_post(self, class_post, db_session):
                assert emails(db_session) == ["module@x", "session@x"]
                db_session.execute(delete(Post))
                db_session.commit()
                assert titles(db_session) == []

            def test_post_is_back(self, class_post, db_session):
                assert titles(db_session) == {titles(1)}
                with models.SessionLocal() as session:
                    assert titles(session) == {titles(1)}

        def test_module_layer_without_the_class_layer(module_user, db_session):
            assert emails(db_session) == ["module@x", "session@x"]
            assert titles(db_session) == {titles(0)}

        class TestAnotherClass:
            def test_fresh_class_layer(self, class_post, db_session):
                assert titles(db_session) == {titles(1)}
                assert emails(db_session) == ["module@x", "session@x"]
        """,
        footer=False,
    )
    write_tests(
        models_project,
        "test_b.py",
        """
        def test_only_the_session_layer(session_user, db_session):
            assert emails(db_session) == ["session@x"]
            assert db_session.scalars(select(Post)).all() == []

        def test_module_layer_again(module_user, db_session):
            assert emails(db_session) == ["module@x", "session@x"]
        """,
        footer=False,
    )
    for _ in range(2):
        result = models_project.run("-p", "no:randomly", "--alchemy-reuse-db")
        result.assert_outcomes(passed=7)
        assert_all_empty(models_project)


# -- 3. a wider fixture first set up inside a narrower layer that wrote is refused ---------

LATE_CONFTEST = """
import pytest
from sqlalchemy import insert
import models

@pytest.fixture(scope="class")
def class_rows():
    with models.engine.begin() as conn:
        conn.execute(insert(models.User), {"email": "class@x"})

@pytest.fixture(scope="module")
def late_module_rows():
    with models.engine.begin() as conn:
        conn.execute(insert(models.User), {"email": "module@x"})
"""


def test_wider_fixture_set_up_late_is_refused(models_project: Project) -> None:
    models_project.write("conftest.py", LATE_CONFTEST)
    write_tests(
        models_project,
        "test_a.py",
        """
        class TestA:
            def test_1(self, class_rows, db_session):
                assert emails(db_session) == ["class@x"]

            def test_2(self, class_rows, late_module_rows, db_session):
                raise AssertionError("must not run")

            def test_3_the_class_rows_are_still_there(self, class_rows, db_session):
                assert emails(db_session) == ["class@x"]
        """,
    )
    write_tests(
        models_project,
        "test_b.py",
        """
        def test_other_module(db_session):
            assert emails(db_session) == []
        """,
        footer=False,
    )
    result = models_project.run("-p", "no:randomly", "--alchemy-reuse-db")
    text = output(result)
    result.assert_outcomes(passed=4, errors=1)
    where, message = only_crash(result)
    assert where == "test_a.py::TestA::test_2 [setup]"
    assert_isolation_error(message)
    assert "late_module_rows" in message and "class_rows" in message, message
    assert "must not run" not in text
    assert_all_empty(models_project)


# -- 4. wider scopes begun after a narrower one ended, and parametrized wide fixtures ------

LATE_FIRST_USE = {
    # A session fixture first used in the second module: its transaction begins right
    # after the first module's savepoint was rolled back.
    "test_1.py": """
        def test_a():
            assert emails(models.SessionLocal()) == []
    """,
    "test_2.py": """
        def test_b(session_rows):
            assert emails(models.SessionLocal()) == ["session@x"]

        def test_c(session_rows):
            assert emails(models.SessionLocal()) == ["session@x"]
    """,
    "test_3.py": """
        def test_d(session_rows):
            assert emails(models.SessionLocal()) == ["session@x"]

        def test_e(module_rows):
            assert emails(models.SessionLocal()) == ["module@x", "session@x"]

        def test_f(module_rows):
            assert emails(models.SessionLocal()) == ["module@x", "session@x"]
    """,
}

LATE_FIRST_USE_CONFTEST = """
import pytest
import models

@pytest.fixture(scope="session")
def session_rows():
    with models.SessionLocal() as session:
        session.add(models.User(email="session@x"))
        session.commit()

@pytest.fixture(scope="module")
def module_rows(session_rows, module_db_session):
    module_db_session.add(models.User(email="module@x"))
    module_db_session.commit()
"""


def test_wide_rows_written_after_a_narrower_scope_ended_stay(models_project: Project) -> None:
    # The savepoint a scope leaves behind when it ends serves the next scope at its depth
    # only if nothing was written since: here the session's and the module's rows are.
    models_project.write("conftest.py", LATE_FIRST_USE_CONFTEST)
    for name, body in LATE_FIRST_USE.items():
        write_tests(models_project, name, body, footer=False)
    models_project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=6)
    assert_all_empty(models_project)


PARAMETRIZED = """
@pytest.fixture(scope="module", params=["p1@x", "p2@x"])
def param_rows(request):
    with models.SessionLocal() as session:
        session.add(User(email=request.param))
        session.commit()
    return request.param

@pytest.fixture(scope="module")
def plain_rows():
    with models.engine.begin() as conn:
        add(conn, "plain@x")

def test_only_this_param(param_rows):
    assert emails(models.SessionLocal()) == [param_rows]

def test_again_only_this_param(param_rows):
    assert emails(models.SessionLocal()) == [param_rows]
"""


def test_parametrized_wide_fixture_rows_end_with_their_param(models_project: Project) -> None:
    # (No empty-table check inside the module: the last param's rows live until its end.)
    write_tests(models_project, "test_params.py", PARAMETRIZED, footer=False)
    models_project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=4)
    assert_all_empty(models_project)


def test_other_rows_undone_with_a_param_are_told(models_project: Project) -> None:
    # plain_rows shares the module's savepoint with param_rows: when pytest moves to the
    # next param, its rows go too, and the tests that use it are stopped, saying so.
    write_tests(
        models_project,
        "test_params.py",
        PARAMETRIZED
        + """
def test_with_both(plain_rows, param_rows):
    assert emails(models.SessionLocal()) == sorted(["plain@x", param_rows])
""",
        footer=False,
    )
    result = models_project.run("-p", "no:randomly", "--alchemy-reuse-db")
    result.assert_outcomes(passed=5, errors=1)
    _, message = only_crash(result)
    assert_isolation_error(message)
    assert "'plain_rows'" in message and "'param_rows'" in message, message
    assert_all_empty(models_project)


LATE_SESSION_FIXTURE = {
    "test_m.py": """
        def test_a(db_session):
            db_session.add(User(email="a@x"))
            db_session.commit()
            assert emails(db_session) == ["a@x"]

        def test_b(session_rows, db_session):
            assert emails(db_session) == ["session@x"]

        def test_c(session_rows, db_session):
            assert emails(db_session) == ["session@x"]
    """,
    "test_n.py": """
        def test_d(session_rows, db_session):
            assert emails(db_session) == ["session@x"]
    """,
}


def test_wide_fixture_first_used_after_narrower_scopes_only_read(
    models_project: Project,
) -> None:
    # test_a's rows are its own: the module's savepoint holds nothing when the session
    # fixture writes in test_b, so it is set aside and the rows last for the run.
    models_project.write("conftest.py", LATE_FIRST_USE_CONFTEST)
    for name, body in LATE_SESSION_FIXTURE.items():
        write_tests(models_project, name, body, footer=False)
    models_project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=4)
    assert_all_empty(models_project)


WIDE_SESSIONS = """
@pytest.fixture(scope="session")
def shared_session():
    session = models.SessionLocal()
    yield session
    session.close()

def test_1_reads_through_a_session_wide_session(shared_session):
    assert emails(shared_session) == []

def test_2_writes_through_it(shared_session):
    shared_session.add(User(email="two@x"))
    shared_session.commit()
    assert emails(shared_session) == ["two@x"]

def test_3_sees_its_own_test_only(shared_session):
    assert emails(shared_session) == []

def test_4_module_db_session_in_tests(module_db_session):
    module_db_session.add(User(email="four@x"))
    module_db_session.commit()
    assert emails(module_db_session) == ["four@x"]

def test_5_module_db_session_again(module_db_session):
    assert emails(module_db_session) == []
"""


def test_sessions_of_wider_scopes_used_by_tests(models_project: Project) -> None:
    # What a test commits through a wider-scoped session is the test's: undone after it.
    write_tests(models_project, "test_wide_sessions.py", WIDE_SESSIONS)
    models_project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=6)
    assert_all_empty(models_project)


OPEN_WIDE_TRANSACTIONS = {
    "test_m.py": """
        @pytest.fixture(scope="module")
        def warmed(module_db_session):
            emails(module_db_session)  # a read: its transaction stays open
            return module_db_session

        def test_1_commits_through_it(warmed):
            warmed.add(User(email="t1@x"))
            warmed.commit()
            assert emails(warmed) == ["t1@x"]

        def test_2_does_not_see_it(warmed, db_session):
            assert emails(db_session) == []

        def test_3_late_session_fixture(db_session, request):
            emails(db_session)  # db_session's transaction: a read, still open
            request.getfixturevalue("session_rows")
            db_session.add(User(email="t3@x"))
            db_session.commit()
            assert emails(db_session) == ["session@x", "t3@x"]
    """,
    "test_n.py": """
        def test_4_only_the_session_rows(session_rows, db_session):
            assert emails(db_session) == ["session@x"]
    """,
}


def test_commits_of_open_wider_transactions_stay_in_the_test(models_project: Project) -> None:
    # A transaction begun in a wider scope and still open (it only read) commits during a
    # test: the test's rows are still the test's.
    models_project.write("conftest.py", LATE_FIRST_USE_CONFTEST)
    for name, body in OPEN_WIDE_TRANSACTIONS.items():
        write_tests(models_project, name, body, footer=False)
    models_project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=4)
    assert_all_empty(models_project)


NESTED_LEFT_OPEN = """
@pytest.fixture(scope="module")
def shared(module_db_session):
    return module_db_session

def test_1_leaves_a_savepoint_open(shared):
    shared.begin_nested()
    shared.add(User(email="nested@x"))
    shared.flush()

def test_2_rolls_back(shared, db_session):
    shared.rollback()  # the savepoint's rows went with test 1: nothing left to undo
    assert emails(db_session) == []

def test_3_leaves_a_transaction_open(shared):
    shared.add(User(email="again@x"))
    shared.flush()

def test_4_commits(shared):
    from pytest_alchemy import IsolationError

    with pytest.raises(IsolationError, match="no longer exists"):
        shared.commit()
    shared.rollback()
"""


def test_savepoint_left_open_by_a_test_in_a_wider_session(models_project: Project) -> None:
    write_tests(models_project, "test_nested_left_open.py", NESTED_LEFT_OPEN)
    models_project.run("-p", "no:randomly", "--alchemy-reuse-db").assert_outcomes(passed=5)
    assert_all_empty(models_project)


FAILED_SETUP = """
@pytest.fixture(scope="module")
def good_rows():
    with models.engine.begin() as conn:
        add(conn, "good@x")

@pytest.fixture(scope="module")
def broken_rows():
    with models.engine.begin() as conn:
        add(conn, "broken@x")
    raise RuntimeError("set-up failed")

def test_1_uses_the_broken_one(broken_rows):
    pass

def test_2_sees_nothing_of_it(db_session):
    assert emails(db_session) == []

def test_3_good_rows_only(good_rows, db_session):
    assert emails(db_session) == ["good@x"]
"""


def test_rows_of_a_wide_fixture_whose_setup_failed_are_undone(models_project: Project) -> None:
    write_tests(models_project, "test_failed_setup.py", FAILED_SETUP, footer=False)
    result = models_project.run("-p", "no:randomly", "--alchemy-reuse-db")
    result.assert_outcomes(passed=2, errors=1)
    assert "set-up failed" in output(result)
    assert_all_empty(models_project)
