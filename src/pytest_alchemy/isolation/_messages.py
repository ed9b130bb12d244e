"""The words of the ledger's refusals: what happened, to whom, and the fix."""

from __future__ import annotations

from typing import Any

from ._scope import Entry


def refusal(describe: str, blockers: list[Entry], foreign: list[Entry], owner: Any) -> str:
    if blockers:
        others = ", ".join(sorted({label(e.owner) for e in blockers}))
        why = (
            f"{others}, opened after it, is still in a transaction; in a test they share "
            "one database connection, each transaction a savepoint inside the one "
            "opened before, so only the last one opened can roll back"
        )
        fix = "Commit, roll back or close the later one first"
    else:
        others = ", ".join(sorted({label(w) for e in foreign for w in e.writers if w is not owner}))
        why = (
            f"{others} wrote while it was open (a transaction opened later that "
            "committed, or statements run inside it); in a test they share one "
            "database connection, so this rollback would undo that work too, which "
            "production would keep"
        )
        fix = "End this transaction before the other one writes, or use one for both"
    return (
        f"pytest-alchemy: the rollback of {describe} was refused: {why}.\n"
        f"Fix: {fix}; or keep the test's own transaction (db_session) committed or "
        "closed while the application runs."
    )


def misnested(who: str, opener: str) -> str:
    """A wider-scoped fixture writes while a narrower scope's layer is open."""
    return (
        f"pytest-alchemy: {who} writes to the database while {opener} (a narrower "
        f"scope) is open, so its rows would be undone when that scope ends, before {who} "
        f"is done with them.\nFix: request {who} before {opener} is set up "
        "(from an earlier test, an autouse fixture, or a fixture that the narrower one "
        "depends on), or give it the narrower scope."
    )


def after_the_end(who: str) -> str:
    """A statement that may write runs after its scope ended (a pytest hook)."""
    return (
        f"pytest-alchemy: a statement that may write ran for {who} after it ended (in a "
        "pytest hook such as pytest_runtest_logreport?): no scope is there to undo it.\n"
        "Fix: write from fixtures or tests, or from hooks that run while the test is "
        "set up or runs."
    )


def label(owner: Any) -> str:
    """How messages name a savepoint's owner (a connection, a session, a scope)."""
    return str(getattr(owner, "label", owner))


def short_sql(sql: str) -> str:
    """A statement on one line, at most 80 characters."""
    text = " ".join(sql.split())
    return text if len(text) <= 80 else text[:77] + "..."
