"""A batch's orders, offers and meter readings checked and stored together (testbed.platform.intake): the
same replies and the same ledger as handling them one by one, with one query for the run's ids."""

import json
import random
import subprocess
import sys
import uuid

import pytest

from testbed.platform import protocol as p
from testbed.platform.ledger import Ledger

from .helpers import make_core, order

PIDS = [f"p{i}" for i in range(6)]
PROSUMERS = [(pid, f"bus{i}", "green" if i % 2 else None) for i, pid in enumerate(PIDS)]
PROSUMERS.append((p.CLOCK_ID, None, None))  # a registry row with the clock's name: still refused for its role


def o(pid: str, msg_id: str, k: int, **kw) -> tuple[str, bytes]:
    return p.prosumer_topic(pid, "order"), json.dumps(order(pid, msg_id, k, **kw)).encode()


def offer(pid: str, msg_id: str, k: int, lo: float, hi: float) -> tuple[str, bytes]:
    body = {"schema": "fpp.offer/1", "msg_id": msg_id, "prosumer": pid, "interval": k, "p_min_kw": lo,
            "p_max_kw": hi, "cost_a": 0.01, "cost_b": 0.1}
    return p.prosumer_topic(pid, "offer"), json.dumps(body).encode()


def tel(pid: str, msg_id: str, k: int, e_exp: float, e_imp: float = 0.0, who: str | None = None) -> tuple[str, bytes]:
    body = {"schema": "fpp.telemetry/1", "msg_id": msg_id, "prosumer": who or pid, "interval": k,
            "e_export_kwh": e_exp, "e_import_kwh": e_imp}
    return p.prosumer_topic(pid, "telemetry"), json.dumps(body).encode()


def gate(k: int) -> tuple[str, bytes]:
    return p.GATE_TOPIC, json.dumps({"schema": "fpp.gate/1", "msg_id": f"g{k}", "interval": k, "t_s": 900.0 * k}).encode()


def ledger_rows(core) -> dict:
    led = core.ledger
    msgs = led._rows("SELECT sender, msg_id, kind, interval_k, hash, payload, seq FROM {p}messages ORDER BY seq")
    return {"messages": msgs, "trades": led.trades(), "settlements": led.settlements(), "intervals": led.intervals()}


def run_both(tmp_path, batches: list[list[tuple[str, bytes]]]):
    """The same batches through a core that takes runs together and one that takes each message alone."""
    together = make_core(f"sqlite:///{tmp_path / 'together.db'}", "fpp_", PROSUMERS)
    alone = make_core(f"sqlite:///{tmp_path / 'alone.db'}", "fpp_", PROSUMERS)
    alone.batches_intake = False
    assert together.batches_intake
    outs = [([(x.topic, x.payload) for x in together.handle_batch(b)], [(x.topic, x.payload) for x in alone.handle_batch(b)])
            for b in batches]
    return together, alone, outs


def codes(outs) -> list[str]:
    return [json.loads(payload)["code"] for topic, payload in outs if topic.endswith("/error")]


def test_every_outcome_of_a_scripted_day_is_the_same_together_and_one_by_one(tmp_path):
    batches = [
        [
            o("p0", "a", 1, side="sell", price=0.10), o("p1", "b", 1, side="buy", price=0.20),
            o("p1", "b", 1, side="buy", price=0.20),  # the same message twice in a run: a duplicate
            o("p2", "b", 1, side="buy", price=0.25),  # the same id from another prosumer: its own message
            o("p3", "a", 1, side="buy", q=2.0),
            o("p1", "b", 1, side="buy", price=0.30),  # the id again with other content: duplicate_id
            o("p4", "x", 0),  # interval 0: the first open one on a new ledger
            offer("p5", "f1", 1, 2.0, 1.0),  # p_min above p_max: invalid
            offer("p5", "f2", 1, -1.0, 1.0),
            (p.prosumer_topic("p4", "order"), b"{not json"),
            (p.prosumer_topic("nobody", "order"), json.dumps(order("nobody", "n", 1)).encode()),  # unknown: alone
            tel("p0", "t-early", 1, 0.25),  # interval 1 is not cleared yet
            tel("p2", "t-who", 0, 0.1, who="p3"),  # identity
            o("p0", "far", 1 + 500),  # too early
            o(p.CLOCK_ID, "c", 1),  # the clock account trades nothing: role
        ],
        [gate(0), gate(1)],
        [
            tel("p0", "t0", 1, 0.25), tel("p1", "t1", 1, 0.0, 0.5),
            tel("p0", "t0", 1, 0.25),  # the retry of a reading in the same run: a duplicate
            tel("p0", "t0-again", 1, 0.30),  # a second reading of the interval: already_settled
            tel("p3", "t3", 1, 0.0, 0.4), tel("p5", "t5", 1, 0.1),
            o("p0", "late", 1),  # the gate is closed: late
            o("p0", "a", 1, side="sell", price=0.10),  # a retry of batch 1's order: a duplicate, acknowledged
            o("p0", "c", 2, side="sell"), o("p3", "d", 2, side="buy", price=0.3),
            gate(2),  # a gate inside a batch clears what came before it
            tel("p0", "t0-2", 2, 0.25), tel("p3", "t3", 2, 0.0, 0.25),  # t3 again for interval 2: duplicate_id
        ],
        [tel("p1", "t1", 1, 0.0, 0.5), tel("p3", "t3-2", 2, 0.0, 0.25)],  # a retry across batches, a new reading
    ]
    together, alone, outs = run_both(tmp_path, batches)
    for a, b in outs:
        assert a == b
    assert ledger_rows(together) == ledger_rows(alone)
    assert together.stats == alone.stats
    # the outcomes themselves, read off the script above
    assert codes(outs[0][0]) == ["duplicate_id", "invalid", "malformed_json", "unknown_prosumer",
                                 "not_cleared", "identity", "too_early", "role"]
    assert codes(outs[2][0]) == ["already_settled", "late", "duplicate_id"]
    assert together.stats["accepted"] == 6 + 7 + 1 and together.stats["duplicates"] == 4


def test_random_batches_agree_message_for_message(tmp_path):
    """Seeded random batches of valid, repeated, conflicting and refused messages, gates between them."""
    rng = random.Random(7)
    batches, sent, k = [], [], 0
    for _ in range(40):
        batch = []
        for _ in range(rng.randint(1, 25)):
            pid, roll = rng.choice(PIDS), rng.random()
            if roll < 0.15 and sent:
                batch.append(rng.choice(sent))  # a retry
                continue
            mid = f"m{rng.randint(0, 60)}"  # ids collide often: duplicates and duplicate_id both happen
            if roll < 0.55:
                msg = o(pid, mid, k + rng.randint(0, 2), side=rng.choice(["buy", "sell"]),
                        q=rng.choice([0.5, 1.0, 2.0]), price=rng.choice([0.1, 0.2, 0.3]))
            elif roll < 0.65:
                lo = rng.uniform(-2, 1)
                msg = offer(pid, mid, k + rng.randint(0, 1), lo, lo + rng.uniform(-0.5, 2))
            else:
                msg = tel(pid, mid, max(k - rng.randint(0, 2), 0), round(rng.uniform(0, 1), 3))
            batch.append(msg)
            sent.append(msg)
            if rng.random() < 0.08:
                batch.append(gate(k))
                k += 1
        batches.append(batch)
    together, alone, outs = run_both(tmp_path, batches)
    for i, (a, b) in enumerate(outs):
        assert a == b, f"batch {i}"
    assert ledger_rows(together) == ledger_rows(alone)
    assert together.stats == alone.stats
    # the script must exercise what it claims to
    all_codes = {c for a, _ in outs for c in codes(a)}
    assert {"duplicate_id", "already_settled", "late", "not_cleared"} <= all_codes
    assert together.stats["duplicates"] > 0 and together.stats["cleared"] >= 3


def test_a_run_is_looked_up_with_one_query_and_stored_with_one_statement_per_table(tmp_path):
    core = make_core(f"sqlite:///{tmp_path / 'l.db'}", "fpp_", PROSUMERS)
    core.handle_batch([gate(0)])
    statements: list[str] = []
    core.ledger._conn.set_trace_callback(statements.append)
    batch = [o(pid, f"{pid}-o", 1) for pid in PIDS] + [tel(pid, f"{pid}-t", 0, 0.1) for pid in PIDS]
    outs = core.handle_batch(batch)
    assert len([x for x in outs if x.topic.endswith("/ack")]) == 12
    lookups = [s for s in statements if s.startswith(("SELECT", "WITH")) and "fpp_messages" in s]
    assert len(lookups) == 1, lookups  # one query for the 12 ids (it was 12)
    settlement_reads = [s for s in statements if s.startswith("SELECT prosumer, kind, p_trade_kw")]
    assert len(settlement_reads) == 1  # one for interval 0's six readings (it was six)


def test_a_run_whose_write_fails_is_answered_one_by_one(tmp_path):
    """A trigger makes the database refuse one message's row (as a full disk or a constraint would): the run's
    write fails, the run is handled again message by message, so only that message gets ``internal``."""
    batches = [[gate(0)], [o(pid, f"{pid}-o", 1) for pid in PIDS] + [tel("p1", "boom", 0, 0.2), tel("p2", "t", 0, 0.1)]]
    together, alone, _ = run_both(tmp_path, batches[:1])
    for core in (together, alone):
        core.ledger._conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON fpp_messages WHEN NEW.msg_id = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'the database refuses this row'); END"
        )
    a = together.handle_batch(batches[1])
    b = alone.handle_batch(batches[1])
    assert [(x.topic, x.payload) for x in a] == [(x.topic, x.payload) for x in b]
    assert codes([(x.topic, x.payload) for x in a]) == ["internal"]
    assert together.ledger.count_messages() == alone.ledger.count_messages() == len(PIDS) + 1
    assert ledger_rows(together) == ledger_rows(alone)
    # its retry, among new messages, is answered from the failure record (not run again) both ways
    retry = [o("p0", "new", 1), tel("p1", "boom", 0, 0.2), o("p2", "new", 1)]
    a = [(x.topic, x.payload) for x in together.handle_batch(retry)]
    assert a == [(x.topic, x.payload) for x in alone.handle_batch(retry)]
    assert codes(a) == ["internal"] and together.stats == alone.stats


@pytest.mark.postgres
def test_a_postgresql_ledger_takes_each_message_alone(pg_url):
    """Platform workers may share a PostgreSQL ledger: an id looked up before the write may be stored by another
    worker meanwhile, so there each message is looked up and stored on its own (and answered the same)."""
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    core = make_core(pg_url, prefix, PROSUMERS)
    try:
        assert core.batches_intake is False
        outs = core.handle_batch([o("p0", "a", 0), o("p0", "a", 0), gate(0)])
        acks = [json.loads(x.payload).get("duplicate") for x in outs if x.topic.endswith("/ack")]
        assert acks == [False, True, False]
    finally:
        core.ledger.drop_all()
        core.ledger.close()


KILLED_WRITER = """
import json, os, signal, sys
from testbed.platform import protocol as p
from testbed.platform.core import PlatformConfig, PlatformCore
from testbed.platform.ledger import Ledger

led = Ledger(sys.argv[1], power_safe=False)
led.upsert_prosumers([("p0", "b0", None)])
core = PlatformCore(led, PlatformConfig())
body = {"schema": "fpp.order/1", "msg_id": "kept", "prosumer": "p0", "interval": 0, "side": "sell",
        "quantity_kw": 1.0, "price_per_kwh": 0.1}
outs = core.handle_batch([(p.prosumer_topic("p0", "order"), json.dumps(body).encode())])
print(len(outs), flush=True)  # acknowledged: committed
os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint, no exit handlers
"""


def test_a_ledger_that_is_not_power_safe_keeps_its_commits_when_the_process_is_killed(tmp_path):
    """synchronous=OFF (in-process platforms of simulated runs) still hands each commit to the operating system
    before the acknowledgement: a killed process loses nothing acknowledged."""
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    res = subprocess.run([sys.executable, "-c", KILLED_WRITER, url], capture_output=True, text=True, timeout=60)
    assert res.returncode == -9 and res.stdout.strip() == "1", res.stderr
    led = Ledger(url)
    assert led.find_message_hash("p0", "kept") is not None and led.count_messages() == 1
    led.close()
