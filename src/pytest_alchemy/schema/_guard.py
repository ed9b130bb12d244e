"""The guard that keeps env.py (and anything else run while the schema is built) on the
test database."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Dialect, Engine

from ..provision import Provisioner


class ForeignConnectionRefused(Exception):
    """Raised inside a driver connect call aimed at a database other than the test one."""

    def __init__(self, target: str) -> None:
        super().__init__(f"pytest-alchemy refused a connection to {target}")
        self.target = target


@contextmanager
def only_connections_to(
    test_url: URL,
    provisioner: Provisioner,
    also: Sequence[URL] | Callable[[], Sequence[URL]] = (),
    refused: list[str] | None = None,
) -> Iterator[None]:
    """While inside, refuse every new DBAPI connection not aimed at ``test_url`` or at
    one of ``also`` (the other test databases one build migrates; a callable is asked at
    each connection, for databases named while inside). Each refused target is added to
    ``refused``, so that a refusal the code inside caught is still known."""

    def guard(dialect: Dialect, conn_rec: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        urls = [test_url, *(also() if callable(also) else also)]
        if not any(aimed_at(dialect, cargs, cparams, url) for url in urls):
            target = provisioner.describe_connect_args(cargs, cparams)
            if refused is not None:
                refused.append(target)
            raise ForeignConnectionRefused(target)

    event.listen(Engine, "do_connect", guard)
    try:
        yield
    finally:
        event.remove(Engine, "do_connect", guard)


def aimed_at(dialect: Dialect, cargs: Sequence[Any], cparams: Mapping[str, Any], url: URL) -> bool:
    if url.get_backend_name() != dialect.name and not {
        url.get_backend_name(),
        dialect.name,
    } <= {"mysql", "mariadb"}:
        return False
    expected_args, expected_params = dialect.create_connect_args(url)
    if list(cargs[: len(expected_args)]) != list(expected_args):
        return False
    return all(cparams.get(key) == value for key, value in expected_params.items())
