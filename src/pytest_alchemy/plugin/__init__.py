"""The pytest layer: options and settings, the fixtures, and the hooks that follow
pytest's scopes. The core below it (:mod:`pytest_alchemy.isolation`, the test database)
works without pytest."""

from ._fixtures import (
    _alchemy_app_routing,
    _alchemy_database,
    _alchemy_isolation,
    _alchemy_schema,
    alchemy_alembic_ini,
    alchemy_create_db,
    alchemy_engines,
    alchemy_metadata,
    alchemy_no_migrations,
    alchemy_reuse_db,
    alchemy_session_options,
    alchemy_sessionmakers,
    alchemy_url,
    class_db_session,
    db_connection,
    db_engine,
    db_session,
    module_db_session,
)
from ._hooks import (
    pytest_fixture_setup,
    pytest_runtest_call,
    pytest_runtest_setup,
    pytest_runtest_teardown,
)
from ._options import (
    pytest_addoption,
    pytest_configure,
    pytest_load_initial_conftests,
    pytest_report_header,
    pytest_unconfigure,
)

__all__ = [
    "_alchemy_app_routing",
    "_alchemy_database",
    "_alchemy_isolation",
    "_alchemy_schema",
    "alchemy_alembic_ini",
    "alchemy_create_db",
    "alchemy_engines",
    "alchemy_metadata",
    "alchemy_no_migrations",
    "alchemy_reuse_db",
    "alchemy_session_options",
    "alchemy_sessionmakers",
    "alchemy_url",
    "class_db_session",
    "db_connection",
    "db_engine",
    "db_session",
    "module_db_session",
    "pytest_addoption",
    "pytest_configure",
    "pytest_fixture_setup",
    "pytest_load_initial_conftests",
    "pytest_report_header",
    "pytest_runtest_call",
    "pytest_runtest_setup",
    "pytest_runtest_teardown",
    "pytest_unconfigure",
]
