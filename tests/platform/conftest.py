"""Fixtures for the platform tests: a real broker on a free loopback port and ledgers on both back ends."""

from __future__ import annotations

import uuid

import pytest

from testbed.platform.broker import start_test_broker
from testbed.platform.ledger import Ledger

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_reason() -> str | None:
    """None if PostgreSQL is reachable, else why not."""
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any failure to connect means: skip
        return f"PostgreSQL at {PG_URL} unreachable: {exc}"


_PG_REASON = postgres_reason()


@pytest.fixture(scope="session")
def broker():
    """Mosquitto where installed (the embedded amqtt broker otherwise), shared by the session."""
    b = start_test_broker()
    yield b
    b.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request, tmp_path):
    """``(url, prefix)`` for a fresh ledger; PostgreSQL tables get a unique prefix and are dropped after."""
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db", prefix
        return
    if _PG_REASON:
        pytest.skip(_PG_REASON)
    yield PG_URL, prefix
    led = Ledger(PG_URL, prefix=prefix)
    led.drop_all()
    led.close()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/ledger.db", "fpp_"


@pytest.fixture
def pg_url():
    """The PostgreSQL URL, or a skip with the reason it is unreachable."""
    if _PG_REASON:
        pytest.skip(_PG_REASON)
    return PG_URL
