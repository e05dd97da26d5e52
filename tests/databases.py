"""The database servers the SQL and shared-state tests use, and what to do when one is down."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

HOW_TO_START = {
    "PostgreSQL on 127.0.0.1:5432": "Start it with: pg_ctlcluster $(ls /etc/postgresql) main start",
    "MariaDB on 127.0.0.1:3306": "Start it with: start-stop-daemon --start --background "
    "--exec /usr/sbin/mariadbd",
}


def unreachable(what: str, exc: Exception) -> NoReturn:
    """Skip (or, under `CI=true`, fail) a test whose database server is not reachable."""
    reason = f"{what} is not reachable: {str(exc).splitlines()[0]}. {HOW_TO_START.get(what, '')}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the database tests must run)")
    pytest.skip(reason)
