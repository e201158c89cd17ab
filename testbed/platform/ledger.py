"""The platform's durable ledger: every SQL statement of the platform lives in this module.

One small interface, two back ends: SQLite (stdlib ``sqlite3``, the default) and PostgreSQL (psycopg 3).
The service writes a message here before it acknowledges it, and writes a whole clearing (interval state,
trades, settlements, green-energy provenance) in one transaction, so a platform killed at any point
restarts from the ledger with no trade lost or written twice.

URLs: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite://:memory:`` and
``postgresql://user@host:port/db``. ``prefix`` is put before every table name so several platforms
(or parallel test runs) can share one database.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from testbed.domain.errors import UserError
from testbed.platform.ledger_services import ServiceRows

log = logging.getLogger(__name__)
_PREFIX_RE = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")

_TABLES = """
CREATE TABLE IF NOT EXISTS {p}prosumers (
    id TEXT PRIMARY KEY, bus TEXT, energy_class TEXT);
CREATE TABLE IF NOT EXISTS {p}messages (
    sender TEXT NOT NULL, msg_id TEXT NOT NULL, kind TEXT NOT NULL, interval_k INTEGER NOT NULL,
    hash TEXT NOT NULL, payload TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (sender, msg_id));
CREATE INDEX IF NOT EXISTS {p}messages_by_interval ON {p}messages (kind, interval_k);
CREATE TABLE IF NOT EXISTS {p}intervals (
    interval_k INTEGER PRIMARY KEY, state TEXT NOT NULL, gate_msg_id TEXT NOT NULL, t_s DOUBLE PRECISION,
    result TEXT);
CREATE TABLE IF NOT EXISTS {p}trades (
    interval_k INTEGER NOT NULL, seq INTEGER NOT NULL, seller TEXT NOT NULL, buyer TEXT NOT NULL,
    p_kw DOUBLE PRECISION NOT NULL, e_kwh DOUBLE PRECISION NOT NULL, price_per_kwh DOUBLE PRECISION NOT NULL,
    energy_class TEXT, PRIMARY KEY (interval_k, seq));
CREATE TABLE IF NOT EXISTS {p}settlements (
    interval_k INTEGER NOT NULL, prosumer TEXT NOT NULL, kind TEXT NOT NULL,
    p_trade_kw DOUBLE PRECISION NOT NULL, e_kwh DOUBLE PRECISION NOT NULL, amount DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (interval_k, prosumer, kind));
CREATE TABLE IF NOT EXISTS {p}failures (
    digest TEXT PRIMARY KEY, sender TEXT NOT NULL, kind TEXT NOT NULL, msg_id TEXT, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {p}meta (
    name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {p}provenance (
    interval_k INTEGER NOT NULL, seq INTEGER NOT NULL, t_s DOUBLE PRECISION, seller TEXT NOT NULL,
    seller_bus TEXT, buyer TEXT NOT NULL, buyer_bus TEXT, e_kwh DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (interval_k, seq));
CREATE TABLE IF NOT EXISTS {p}contracts (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, state TEXT NOT NULL, payload TEXT NOT NULL,
    selection TEXT, dispatch TEXT, settlement TEXT);
CREATE TABLE IF NOT EXISTS {p}service_awards (
    contract_id TEXT NOT NULL, member TEXT NOT NULL, offer_id TEXT NOT NULL, capacity_kw DOUBLE PRECISION NOT NULL,
    counted_kw DOUBLE PRECISION NOT NULL, sensitivity DOUBLE PRECISION NOT NULL, cost DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (contract_id, member));
CREATE TABLE IF NOT EXISTS {p}service_settlements (
    contract_id TEXT NOT NULL, member TEXT NOT NULL, cost DOUBLE PRECISION NOT NULL,
    share DOUBLE PRECISION NOT NULL, utilisation DOUBLE PRECISION NOT NULL, penalty DOUBLE PRECISION NOT NULL,
    payout DOUBLE PRECISION NOT NULL, required_kwh DOUBLE PRECISION NOT NULL,
    delivered_kwh DOUBLE PRECISION NOT NULL, shares TEXT NOT NULL, PRIMARY KEY (contract_id, member));
"""


@dataclass(frozen=True)
class StoredMessage:
    sender: str
    msg_id: str
    kind: str
    interval: int
    hash: str
    payload: dict[str, Any]
    text: str | None = field(default=None, compare=False, repr=False)
    """The payload's JSON text when the caller has it already (stored as it is); else ``payload`` is dumped."""


class Ledger(ServiceRows):
    """A connection to the ledger database. Not thread-safe: use it from one thread (the service loop)."""

    def __init__(self, url: str, prefix: str = "fpp_", power_safe: bool = True) -> None:
        """``power_safe=False`` (SQLite only): commits are handed to the operating system without waiting for
        the disk (``synchronous=OFF``): they still survive a killed process, but a power cut or an operating
        system crash may lose or corrupt the file. For simulated runs, which are repeated from their seed."""
        if not _PREFIX_RE.match(prefix):
            raise UserError(
                "ledger table prefix is invalid",
                [f"prefix {prefix!r}: lower-case letters, digits and _, not starting with a digit"],
            )
        self.url = url
        self.prefix = prefix
        if url.startswith("sqlite://"):
            self.kind = "sqlite"
            path = url.removeprefix("sqlite://")
            path = ":memory:" if path == ":memory:" else path.removeprefix("/")
            if not path:
                raise UserError(
                    "ledger URL has no file", [f"{url}: use sqlite:///relative.db or sqlite:////abs.db"]
                )
            self._conn: Any = sqlite3.connect(path, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed transaction survives a killed process (not a power cut).
            self._conn.execute(f"PRAGMA synchronous={'NORMAL' if power_safe else 'OFF'}")
        elif url.startswith(("postgresql://", "postgres://")):
            self.kind = "postgresql"
            import psycopg

            try:
                self._conn = psycopg.connect(url, autocommit=True)
            except psycopg.OperationalError as exc:
                raise UserError("cannot reach the PostgreSQL ledger", [f"{url}: {exc}".strip()]) from None
        else:
            raise UserError("unknown ledger URL", [f"{url!r}: expected sqlite:///path or postgresql://..."])
        self._in_batch = False
        self._savepoints = 0
        self._sql_cache: dict[str, str] = {}
        self._streams = 0
        with self._tx() as cur:
            for stmt in _TABLES.format(p=prefix).split(";"):
                if stmt.strip():
                    cur.execute(stmt)
        self._seq = self._scalar(f"SELECT COALESCE(MAX(seq), 0) FROM {prefix}messages") or 0
        if self.kind == "postgresql":
            self._start_sequence()

    def _start_sequence(self) -> None:
        """PostgreSQL numbers messages from a sequence, so that several platform workers on one ledger keep
        one arrival order: a message acknowledged before another was sent has the lower number. A ledger
        written before the sequence existed starts it after its highest number."""
        seq = f"{self.prefix}message_seq"
        with self._tx() as cur:
            cur.execute(f"CREATE SEQUENCE IF NOT EXISTS {seq}")
            cur.execute(f"SELECT last_value, is_called FROM {seq}")
            last, called = cur.fetchone()
            if self._seq > (last if called else last - 1):
                cur.execute(f"SELECT setval('{seq}', %s)", (self._seq,))

    # ---- plumbing ----------------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        out = self._sql_cache.get(sql)
        if out is None:
            out = sql.replace("{p}", self.prefix)
            out = self._sql_cache[sql] = out.replace("?", "%s") if self.kind == "postgresql" else out
        return out

    @contextmanager
    def _tx(self, one_statement: bool = False, cannot_fail: bool = False) -> Iterator[Any]:
        """One atomic write. Inside :meth:`batch` it is a savepoint of the batch's transaction: a failed write
        undoes only itself, and nothing is durable before the batch commits. ``one_statement``: the write is a
        single statement, which SQLite undoes by itself when it fails (the transaction stays), so it needs no
        savepoint there (PostgreSQL aborts the whole transaction on any error: a savepoint, unless ``cannot_fail``:
        one statement that nothing a sender sends can make fail, such as an insert that does nothing on a
        conflict; should it fail all the same (an outage), the whole batch fails and nothing of it is answered).
        A savepoint costs PostgreSQL two round trips more per message."""
        cur = self._conn.cursor()
        if self._in_batch and one_statement and (self.kind == "sqlite" or cannot_fail):
            try:
                yield cur
            finally:
                cur.close()
            return
        if self._in_batch:
            self._savepoints += 1
            name = f"w{self._savepoints}"
            cur.execute(f"SAVEPOINT {name}")
            try:
                yield cur
            except BaseException:
                cur.execute(f"ROLLBACK TO SAVEPOINT {name}")
                cur.execute(f"RELEASE SAVEPOINT {name}")
                raise
            else:
                cur.execute(f"RELEASE SAVEPOINT {name}")
            finally:
                cur.close()
            return
        cur.execute("BEGIN")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: every write inside is part of one transaction, committed when the block ends (rolled
        back if it raises). The service answers the messages of a batch only after this returns."""
        if self._in_batch:
            raise RuntimeError("ledger batches do not nest")
        cur = self._conn.cursor()
        cur.execute("BEGIN")
        self._in_batch, self._savepoints = True, 0
        seq = self._seq
        try:
            yield
        except BaseException:
            cur.execute("ROLLBACK")
            self._seq = seq
            raise
        else:
            try:
                cur.execute("COMMIT")
            except BaseException:
                self._seq = seq
                try:  # a failed COMMIT may leave the transaction open: end it, so nothing of it is kept
                    cur.execute("ROLLBACK")
                except Exception:
                    log.warning("no transaction to roll back after the failed commit")
                raise
        finally:
            self._in_batch = False
            cur.close()

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.kind == "sqlite":  # its connection makes (and closes) the cursor itself
            return self._conn.execute(self._sql(sql), params).fetchall()
        cur = self._conn.cursor()
        try:
            cur.execute(self._sql(sql), params)
            return list(cur.fetchall())
        finally:
            cur.close()

    def _scalar(self, sql: str, params: tuple = ()) -> Any:
        rows = self._rows(sql, params)
        return rows[0][0] if rows else None

    def close(self) -> None:
        self._conn.close()

    def drop_all(self) -> None:
        """Drop this prefix's tables (tests use it to clean a shared PostgreSQL database)."""
        with self._tx() as cur:
            for t in ("service_settlements", "service_awards", "contracts", "provenance", "settlements", "trades",
                      "intervals", "messages", "prosumers", "failures", "meta"):
                cur.execute(f"DROP TABLE IF EXISTS {self.prefix}{t}")
            if self.kind == "postgresql":
                cur.execute(f"DROP SEQUENCE IF EXISTS {self.prefix}message_seq")

    # ---- prosumers -------------------------------------------------------------------------------

    def upsert_prosumers(self, rows: list[tuple[str, str | None, str | None]]) -> None:
        """``(id, bus, energy_class)`` rows; an existing id gets the new bus and class."""
        with self._tx() as cur:
            for pid, bus, cls in rows:
                cur.execute(self._sql("DELETE FROM {p}prosumers WHERE id = ?"), (pid,))
                cur.execute(
                    self._sql("INSERT INTO {p}prosumers (id, bus, energy_class) VALUES (?, ?, ?)"),
                    (pid, bus, cls),
                )

    def prosumers(self) -> dict[str, tuple[str | None, str | None]]:
        return {r[0]: (r[1], r[2]) for r in self._rows("SELECT id, bus, energy_class FROM {p}prosumers")}

    # ---- messages --------------------------------------------------------------------------------

    def find_message(self, sender: str, msg_id: str) -> StoredMessage | None:
        rows = self._rows(
            "SELECT sender, msg_id, kind, interval_k, hash, payload FROM {p}messages "
            "WHERE sender = ? AND msg_id = ?",
            (sender, msg_id),
        )
        if not rows:
            return None
        r = rows[0]
        return StoredMessage(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]))

    def find_message_hash(self, sender: str, msg_id: str) -> tuple[str, str] | None:
        """``(kind, hash)`` of the accepted message ``msg_id`` of ``sender`` (the idempotency check), or None."""
        rows = self._rows("SELECT kind, hash FROM {p}messages WHERE sender = ? AND msg_id = ?", (sender, msg_id))
        return (rows[0][0], rows[0][1]) if rows else None

    def _insert_message(self, cur: Any, m: StoredMessage, if_new: bool = False) -> bool:
        """Insert ``m`` (its canonical ``text`` when it has one); with ``if_new``, return False instead of failing
        when its (sender, msg_id) is stored. ``cur`` is a cursor, or SQLite's connection itself."""
        conflict = " ON CONFLICT (sender, msg_id) DO NOTHING" if if_new else ""
        payload = json.dumps(m.payload) if m.text is None else m.text
        row = (m.sender, m.msg_id, m.kind, m.interval, m.hash, payload)
        if self.kind == "postgresql":
            done = cur.execute(
                self._sql(
                    "INSERT INTO {p}messages (sender, msg_id, kind, interval_k, hash, payload, seq) "
                    "VALUES (?, ?, ?, ?, ?, ?, nextval('{p}message_seq'))" + conflict
                ),
                row,
            )
        else:
            self._seq += 1
            done = cur.execute(
                self._sql(
                    "INSERT INTO {p}messages (sender, msg_id, kind, interval_k, hash, payload, seq) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)" + conflict
                ),
                (*row, self._seq),
            )
            if done.rowcount != 1:
                self._seq -= 1
        return done.rowcount == 1

    def message_hashes(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
        """:meth:`find_message_hash` of many ``(sender, msg_id)`` keys in one query per 400: the found ones."""
        found: dict[tuple[str, str], tuple[str, str]] = {}
        for i in range(0, len(keys), 400):
            chunk = keys[i : i + 400]
            # CROSS JOIN keeps the asked keys the outer loop: one primary-key probe each, whatever the ledger's size
            sql = (
                "WITH q(s, m) AS (VALUES " + ",".join(["(?, ?)"] * len(chunk)) + ") "
                "SELECT q.s, q.m, t.kind, t.hash FROM q CROSS JOIN {p}messages AS t "
                "WHERE t.sender = q.s AND t.msg_id = q.m"
            )
            for s, m, kind, h in self._rows(sql, tuple(x for key in chunk for x in key)):
                found[(s, m)] = (kind, h)
        return found

    def telemetry_contexts(self, keys: list[tuple[int, str]]) -> dict[tuple[int, str], tuple[str | None, bool,
                                                                                               float | None]]:
        """:meth:`telemetry_context` of many ``(interval, prosumer)`` keys, with two queries per interval."""
        out: dict[tuple[int, str], tuple[str | None, bool, float | None]] = {}
        for k in sorted({k for k, _ in keys}):
            state = self.interval_state(k)
            rows = self._rows(
                "SELECT prosumer, kind, p_trade_kw FROM {p}settlements WHERE interval_k = ?", (k,)
            )
            market = {pid: p_kw for pid, kind, p_kw in rows if kind == "market"}
            imbalance = {pid for pid, kind, _ in rows if kind == "imbalance"}
            for kk, pid in keys:
                if kk == k:
                    out[(k, pid)] = (state, pid in imbalance, market.get(pid))
        return out

    def record_messages(self, messages: list[StoredMessage], settlements: list[tuple]) -> None:
        """Store accepted messages (in this order) and the imbalance settlements of their meter readings, one
        statement per table, all or nothing: it raises, and writes nothing, if any of them is stored already.
        For one writer (SQLite); PostgreSQL's platform workers store each message with :meth:`record_message`."""
        seq = self._seq
        rows = [
            (m.sender, m.msg_id, m.kind, m.interval, m.hash, json.dumps(m.payload) if m.text is None else m.text,
             seq + i)
            for i, m in enumerate(messages, 1)
        ]
        try:
            with self._tx() as cur:
                cur.executemany(
                    self._sql(
                        "INSERT INTO {p}messages (sender, msg_id, kind, interval_k, hash, payload, seq) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)"
                    ),
                    rows,
                )
                self._insert_settlements(cur, settlements)
        except BaseException:
            self._seq = seq
            raise
        self._seq = seq + len(rows)

    def record_message(self, m: StoredMessage, settlement: tuple | None = None) -> bool:
        """Store an accepted message (and, for telemetry, its imbalance settlement) in one transaction.

        False, and nothing written, when a message with its (sender, msg_id) is already stored: another
        platform worker stored it since it was looked up (PostgreSQL makes this insert wait for that worker's
        commit, so the caller then finds it)."""
        if settlement is None and self._in_batch and self.kind == "sqlite":  # one statement: see _tx
            return self._insert_message(self._conn, m, if_new=True)
        with self._tx(one_statement=settlement is None, cannot_fail=settlement is None) as cur:
            if not self._insert_message(cur, m, if_new=True):
                return False
            if settlement is not None:
                self._insert_settlements(cur, [settlement])
        return True

    def messages(self, kind: str, interval: int) -> list[StoredMessage]:
        """Accepted messages of ``kind`` for ``interval`` in arrival order."""
        rows = self._rows(
            "SELECT sender, msg_id, kind, interval_k, hash, payload FROM {p}messages "
            "WHERE kind = ? AND interval_k = ? ORDER BY seq",
            (kind, interval),
        )
        return [StoredMessage(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def messages_after(self, kind: str, interval: int) -> list[StoredMessage]:
        """Accepted messages of ``kind`` for the intervals after ``interval``, by interval then arrival."""
        rows = self._rows(
            "SELECT sender, msg_id, kind, interval_k, hash, payload FROM {p}messages "
            "WHERE kind = ? AND interval_k > ? ORDER BY interval_k, seq",
            (kind, interval),
        )
        return [StoredMessage(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def messages_of_kind(self, kind: str) -> list[StoredMessage]:
        """All accepted messages of ``kind``, by interval then arrival."""
        rows = self._rows(
            "SELECT sender, msg_id, kind, interval_k, hash, payload FROM {p}messages "
            "WHERE kind = ? ORDER BY interval_k, seq",
            (kind,),
        )
        return [StoredMessage(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def count_messages(self, kind: str | None = None) -> int:
        if kind is None:
            return int(self._scalar("SELECT COUNT(*) FROM {p}messages"))
        return int(self._scalar("SELECT COUNT(*) FROM {p}messages WHERE kind = ?", (kind,)))

    # ---- messages the platform failed on, and the platform's own settings -------------------------

    def record_failure(self, digest: str, sender: str, kind: str, msg_id: str | None, detail: str) -> None:
        """Remember an inbound message (by the digest of its topic and bytes) that made the platform fail,
        so that its retry is answered from here instead of failing (or crashing) again."""
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO {p}failures (digest, sender, kind, msg_id, detail) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (digest) DO NOTHING"
                ),
                (digest, sender, kind, msg_id, detail),
            )

    def failures(self) -> dict[str, str]:
        """digest -> detail of every recorded failure."""
        return {r[0]: r[1] for r in self._rows("SELECT digest, detail FROM {p}failures")}

    def setting(self, name: str, default: str) -> str:
        """A stored setting of this platform; the first call stores ``default`` and later ones return it."""
        with self._tx() as cur:
            cur.execute(
                self._sql("INSERT INTO {p}meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"),
                (name, default),
            )
        return str(self._scalar("SELECT value FROM {p}meta WHERE name = ?", (name,)))

    # ---- intervals and clearing ------------------------------------------------------------------

    def interval(self, k: int) -> tuple[str, str, float | None, dict | None] | None:
        """``(state, gate_msg_id, t_s, result)`` of interval ``k``; state is "closed" or "cleared"."""
        rows = self._rows(
            "SELECT state, gate_msg_id, t_s, result FROM {p}intervals WHERE interval_k = ?", (k,)
        )
        if not rows:
            return None
        s, g, t, res = rows[0]
        return s, g, t, (json.loads(res) if res else None)

    def interval_state(self, k: int) -> str | None:
        """ "closed", "cleared" or None, without reading the stored result."""
        return self._scalar("SELECT state FROM {p}intervals WHERE interval_k = ?", (k,))

    def telemetry_context(self, k: int, prosumer: str) -> tuple[str | None, bool, float | None]:
        """What settling a meter reading of ``prosumer`` for interval ``k`` needs, in one query: the
        interval's state (:meth:`interval_state`), whether it has an imbalance settlement already
        (:meth:`has_settlement`) and its market settlement's power (:meth:`market_settlement_kw`)."""
        rows = self._rows(
            "SELECT (SELECT state FROM {p}intervals WHERE interval_k = ?), "
            "(SELECT 1 FROM {p}settlements WHERE interval_k = ? AND prosumer = ? AND kind = 'imbalance'), "
            "(SELECT p_trade_kw FROM {p}settlements WHERE interval_k = ? AND prosumer = ? AND kind = 'market')",
            (k, k, prosumer, k, prosumer),
        )
        state, imbalance, p_kw = rows[0]
        return state, imbalance is not None, p_kw

    def last_closed_interval(self) -> int | None:
        return self._scalar("SELECT MAX(interval_k) FROM {p}intervals")

    def unclear_intervals(self) -> list[int]:
        return [
            r[0]
            for r in self._rows(
                "SELECT interval_k FROM {p}intervals WHERE state = 'closed' ORDER BY interval_k"
            )
        ]

    def close_interval(self, k: int, gate_msg_id: str, t_s: float) -> None:
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO {p}intervals (interval_k, state, gate_msg_id, t_s) "
                    "VALUES (?, 'closed', ?, ?)"
                ),
                (k, gate_msg_id, t_s),
            )

    def _insert_settlements(self, cur: Any, rows: list[tuple]) -> None:
        if rows:
            cur.executemany(
                self._sql(
                    "INSERT INTO {p}settlements (interval_k, prosumer, kind, p_trade_kw, e_kwh, "
                    "amount) VALUES (?, ?, ?, ?, ?, ?)"
                ),
                rows,
            )

    def record_clearing(
        self, k: int, result: dict, trades: list[tuple], settlements: list[tuple], provenance: list[tuple]
    ) -> None:
        """Write one interval's clearing atomically and mark it cleared.

        ``trades``: ``(seller, buyer, p_kw, e_kwh, price_per_kwh, energy_class)``; ``settlements``:
        ``(interval, prosumer, kind, p_trade_kw, e_kwh, amount)``; ``provenance``:
        ``(t_s, seller, seller_bus, buyer, buyer_bus, e_kwh)``.
        """
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "UPDATE {p}intervals SET state = 'cleared', result = ? "
                    "WHERE interval_k = ? AND state = 'closed'"
                ),
                (json.dumps(result), k),
            )
            if cur.rowcount != 1:
                raise RuntimeError(f"interval {k} is not closed-and-uncleared in the ledger")
            if trades:
                cur.executemany(
                    self._sql(
                        "INSERT INTO {p}trades (interval_k, seq, seller, buyer, p_kw, e_kwh, "
                        "price_per_kwh, energy_class) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    [(k, i, *t) for i, t in enumerate(trades)],
                )
            self._insert_settlements(cur, settlements)
            if provenance:
                cur.executemany(
                    self._sql(
                        "INSERT INTO {p}provenance (interval_k, seq, t_s, seller, seller_bus, "
                        "buyer, buyer_bus, e_kwh) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    [(k, i, *pv) for i, pv in enumerate(provenance)],
                )

    # ---- reports ---------------------------------------------------------------------------------

    _REPORTS = {
        "trades": "SELECT interval_k, seq, seller, buyer, p_kw, e_kwh, price_per_kwh, energy_class "
                  "FROM {p}trades ORDER BY interval_k, seq",
        "settlements": "SELECT interval_k, prosumer, kind, p_trade_kw, e_kwh, amount FROM {p}settlements "
                       "ORDER BY interval_k, prosumer, kind",
        "provenance": "SELECT interval_k, seq, t_s, seller, seller_bus, buyer, buyer_bus, e_kwh "
                      "FROM {p}provenance ORDER BY interval_k, seq",
        "telemetry": "SELECT sender, interval_k, payload FROM {p}messages WHERE kind = 'telemetry' "
                     "ORDER BY interval_k, sender",
        "interval_results": "SELECT interval_k, result FROM {p}intervals ORDER BY interval_k",
    }

    def stream(self, report: str) -> Iterator[tuple]:
        """The rows of ``report`` (a key of ``_REPORTS``: the methods below say their columns and order), read a
        few thousand at a time: a year-long ledger has millions of rows."""
        sql = self._sql(self._REPORTS[report])
        if self.kind == "postgresql":  # a server-side cursor: several streams may be read side by side
            self._streams += 1
            with self._conn.cursor(name=f"{self.prefix}stream{self._streams}", withhold=True) as cur:
                cur.itersize = 5000
                cur.execute(sql)
                yield from cur
            return
        cur = self._conn.execute(sql)
        try:
            while rows := cur.fetchmany(5000):
                yield from rows
        finally:
            cur.close()

    def trades(self) -> list[tuple]:
        """``(interval, seq, seller, buyer, p_kw, e_kwh, price_per_kwh, energy_class)`` in order."""
        return list(self.stream("trades"))

    def settlements(self) -> list[tuple]:
        """``(interval, prosumer, kind, p_trade_kw, e_kwh, amount)`` in order."""
        return list(self.stream("settlements"))

    def provenance(self) -> list[tuple]:
        """``(interval, seq, t_s, seller, seller_bus, buyer, buyer_bus, e_kwh)`` in order."""
        return list(self.stream("provenance"))

    def intervals(self) -> list[tuple]:
        return self._rows(
            "SELECT interval_k, state, gate_msg_id, t_s, result FROM {p}intervals ORDER BY interval_k"
        )
