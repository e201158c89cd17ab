"""Group commit in the core: a batch of messages is one ledger transaction, each message still atomic on its
own, and no reply of a batch exists before its commit."""

import json
import sqlite3

from testbed.platform import protocol as p

from .helpers import make_core, order

PIDS = ["p0", "p1", "p2"]
PROSUMERS = [(pid, f"bus{i}", None) for i, pid in enumerate(PIDS)]


def msg(pid: str, msg_id: str, k: int = 1, **kw) -> tuple[str, bytes]:
    return p.prosumer_topic(pid, "order"), json.dumps(order(pid, msg_id, k, **kw)).encode()


def gate(k: int) -> tuple[str, bytes]:
    return p.GATE_TOPIC, json.dumps({"schema": "fpp.gate/1", "msg_id": f"g{k}", "interval": k, "t_s": 0.0}).encode()


def acks(outs) -> list[tuple[str, bool]]:
    return [
        (a.msg_id, a.duplicate)
        for o in outs
        if o.topic.endswith("/ack")
        for a in [p.Ack.model_validate_json(o.payload)]
    ]


def test_a_batch_is_one_commit_and_each_message_keeps_its_own_answer(sqlite_url):
    core = make_core(*sqlite_url, PROSUMERS)
    statements: list[str] = []
    core.ledger._conn.set_trace_callback(statements.append)  # the SQL that SQLite really runs
    batch = [
        msg(pid, f"{pid}-{j}", side="sell" if pid == "p0" else "buy", price=0.15 if pid == "p0" else 0.2)
        for j in range(10)
        for pid in PIDS
    ]
    batch.append(msg("p1", "p1-0", q=2.0))  # same id, different order: refused, the rest stands
    batch.append(msg("p2", "p2-0", side="buy", price=0.2))  # a retry of an order of this batch: duplicate
    batch.append(gate(1))  # clears what came before it in the batch
    batch.append(msg("p0", "late", 1))  # after the gate: late
    outs = core.handle_batch(batch)
    commits = [s for s in statements if s.strip().upper() == "COMMIT"]
    assert len(commits) == 1
    assert [s for s in statements if s.strip().upper() in ("BEGIN", "ROLLBACK")] == ["BEGIN"]
    got = acks(outs)
    assert got.count(("p1-0", False)) == 1 and ("p2-0", True) in got and ("g1", False) in got
    assert len([a for a in got if not a[1]]) == 31  # 30 orders and the gate
    errors = [p.ErrorMsg.model_validate_json(o.payload).code for o in outs if o.topic.endswith("/error")]
    assert sorted(errors) == ["duplicate_id", "late"]
    led = core.ledger
    assert led.count_messages("order") == 30 and led.interval_state(1) == "cleared"
    # 10 sells of 1 kW from p0 against 20 buys of 1 kW at 0.20: 10 kW trade
    assert abs(sum(t[4] for t in led.trades()) - 10.0) < 1e-9


class FailingCommit:
    """A fake SQLite connection whose COMMIT fails once (a full disk or an I/O error cannot be produced
    reliably on a test machine); everything else goes to the real connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.armed = conn, True

    def cursor(self):
        fake, cur = self, self.conn.cursor()

        class Cursor:
            def execute(self, sql, params=()):
                if fake.armed and sql == "COMMIT":
                    fake.armed = False
                    raise sqlite3.OperationalError("disk I/O error")
                return cur.execute(sql, params)

            def __getattr__(self, name):
                return getattr(cur, name)

        return Cursor()

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_a_batch_whose_commit_fails_is_not_answered_and_can_be_sent_again(sqlite_url):
    core = make_core(*sqlite_url, PROSUMERS)
    real = core.ledger._conn
    core.ledger._conn = FailingCommit(real)
    batch = [msg("p0", "a"), msg("p1", "b", side="buy", price=0.2), gate(1)]
    assert core.handle_batch(batch) == []  # no ack, no result: nothing of it is durable
    assert not real.in_transaction
    assert core.ledger.count_messages() == 0 and core.ledger.interval(1) is None
    assert core.last_closed is None  # read back from the ledger, not left at the uncommitted gate
    outs = core.handle_batch(batch)  # the senders retry: accepted now, not taken for duplicates
    assert [a for a in acks(outs)] == [("a", False), ("b", False), ("g1", False)]
    assert core.ledger.count_messages() == 2 and core.ledger.interval_state(1) == "cleared"


def test_a_failed_commit_leaves_no_order_in_the_clearing_memory(sqlite_url):
    """The core keeps the open intervals' orders in memory for the clearing: a batch that did not commit must
    not leave its orders there, or the retried batch would trade them twice."""
    core = make_core(*sqlite_url, PROSUMERS)
    core.ledger._conn = FailingCommit(core.ledger._conn)
    batch = [msg("p0", "a", side="sell", price=0.1, q=1.0), msg("p1", "b", side="buy", price=0.2, q=1.0)]
    assert core.handle_batch(batch) == []
    assert core.book == {}  # read back from the ledger, which has nothing of the batch
    assert acks(core.handle_batch(batch)) == [("a", False), ("b", False)]
    assert [o.msg_id for o in core.book[1][0]] == ["a", "b"]
    core.handle_batch([gate(1)])
    # one sell of 1 kW at 0.10 against one buy of 1 kW at 0.20: one trade of 1 kW, not two
    assert [(t[2], t[3], t[4]) for t in core.ledger.trades()] == [("p0", "p1", 1.0)]
    assert core.book == {}
    core.ledger.close()


def test_a_restarted_core_clears_the_orders_it_accepted_before(sqlite_url):
    """After a restart the memory of open orders is filled from the ledger: the clearing is the same."""
    first = make_core(*sqlite_url, PROSUMERS)
    first.handle_batch([msg("p0", "s1", 1, side="sell", price=0.1, q=2.0), msg("p0", "s2", 2, side="sell", price=0.1),
                        msg("p1", "b2", 2, side="buy", price=0.2, q=3.0), gate(1)])
    kept = {k: [(o.msg_id, o.quantity_kw) for o in orders] for k, (orders, _) in first.book.items()}
    first.ledger.close()
    second = make_core(*sqlite_url, PROSUMERS)
    assert {k: [(o.msg_id, o.quantity_kw) for o in orders] for k, (orders, _) in second.book.items()} == kept
    assert kept == {2: [("s2", 1.0), ("b2", 3.0)]}
    second.handle_batch([msg("p2", "b3", 2, side="buy", price=0.3, q=0.5), gate(2)])
    # 1 kW sold by p0 in interval 2; the highest bid (p2, 0.5 kW) is served first, then p1 gets 0.5 kW
    assert sorted((t[0], t[3], t[4]) for t in second.ledger.trades()) == [(2, "p1", 0.5), (2, "p2", 0.5)]
    second.ledger.close()
