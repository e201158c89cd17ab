"""The orders, offers and meter readings of a batch handled together: the same answers as one by one, fewer
ledger round trips.

A market interval brings each prosumer's order and meter reading at once. :func:`handle_run` takes a run of
such messages (consecutive in a batch, nothing else between them) and checks them against the ledger with one
query for all their ids and one per interval for the meter readings' settlements, instead of up to three
queries per message, then stores what it accepts with one statement per table. What it answers, refuses and
stores, and in which order, is what :meth:`PlatformCore.handle <testbed.platform.core.PlatformCore.handle>`
gives message by message: a message is checked against those before it in the run as against the ledger (a
repeated id is a duplicate, a second meter reading of an interval is ``already_settled``).

Nothing of a run is kept in memory, counted or answered before its write succeeded. If the write or anything
unexpected fails, the run is handled again one message at a time, so each message keeps its own outcome
(an ``internal`` error for the one a bug trips on, as before).

One writer only: a ledger that other platform workers write too (PostgreSQL) may have stored a message after
the query, so :func:`runnable` sends those messages one by one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from testbed.platform import codec
from testbed.platform import protocol as p
from testbed.platform import services_protocol as sp
from testbed.platform.ledger import StoredMessage

if TYPE_CHECKING:
    from testbed.platform.core import Out, PlatformCore

log = logging.getLogger(__name__)

MARKET_KINDS = frozenset({"order", "offer", "telemetry"})
if MARKET_KINDS & set(sp.PROSUMER_KINDS):  # a topic must belong to one handler (services are asked first)
    raise ImportError(f"market and services share message kinds: {sorted(MARKET_KINDS & set(sp.PROSUMER_KINDS))}")

Run = list[tuple[str, str, str, bytes]]
"""``(sender, kind, topic, payload)`` of each message of a run, in arrival order."""


def runnable(core: PlatformCore, topic: str, payload: bytes) -> tuple[str, str] | None:
    """``(sender, kind)`` if the message can join a run: a registered prosumer's order, offer or meter reading
    on a ledger with one writer, that did not make the platform fail before. Else None (handled on its own)."""
    if not core.batches_intake:
        return None
    where = p.parse_topic(topic)
    if where is None or where[1] not in MARKET_KINDS or where[0] not in core.prosumers:
        return None
    if where[0] in (p.CLOCK_ID, p.PLATFORM_ID):  # refused for its role, even if registered as a prosumer
        return None
    if core.failed and core.digest(topic, payload) in core.failed:
        return None
    return where


def handle_run(core: PlatformCore, run: Run) -> list[Out]:
    """The replies to ``run``, its accepted messages stored (inside the caller's ledger batch)."""
    try:
        book, n_accepted, duplicates, replies = _check_and_store(core, run)
    except Exception:
        log.warning("a run of %d messages is handled one by one after a failure", len(run), exc_info=True)
        return [o for _, _, topic, payload in run for o in core.handle(topic, payload)]
    if core.keeps_book:
        for k, i, msg in book:
            core.book.setdefault(k, ([], []))[i].append(msg)
    core.stats["accepted"] += n_accepted
    core.stats["duplicates"] += duplicates
    outs: list[Out] = []
    for sender, kind, exc, out in replies:
        outs += core.refusal(sender, kind, exc) if exc is not None else out
    return outs


def _check_and_store(core: PlatformCore, run: Run) -> tuple[list, int, int, list]:
    """Check every message of ``run`` in order and store the accepted ones; change nothing else. Returns
    what to add to the book, the counts, and each message's ``(sender, kind, refusal or None, replies)``."""
    decoded: list[tuple[str, str, codec.Inbound | p.ProtocolError]] = []
    for sender, kind, _, payload in run:
        try:
            decoded.append((sender, kind, codec.decode_inbound(kind, payload, core.config.max_payload_bytes)))
        except p.ProtocolError as exc:
            decoded.append((sender, kind, exc))
    valid = [(s, k, m) for s, k, m in decoded if isinstance(m, codec.Inbound)]
    stored = core.ledger.message_hashes([(s, m.msg.msg_id) for s, _, m in valid])
    contexts = core.ledger.telemetry_contexts([(m.msg.interval, s) for s, k, m in valid if k == "telemetry"])

    earlier: dict[tuple[str, str], tuple[str, str]] = {}  # this run's accepted messages: (kind, hash)
    settled: set[tuple[int, str]] = set()  # this run's meter readings
    accepted: list[StoredMessage] = []
    settlements: list[tuple] = []
    book: list[tuple[int, int, object]] = []
    replies: list[tuple[str, str, p.ProtocolError | None, list[Out]]] = []  # in order; refusals answered later
    duplicates = 0
    for sender, kind, item in decoded:
        if not isinstance(item, codec.Inbound):
            replies.append((sender, kind, item, []))
            continue
        msg = item.msg
        key, where = (sender, msg.msg_id), (msg.interval, sender)
        context = None
        if kind == "telemetry":  # as the ledger has it, with this run's readings as if already stored
            state, done, p_trade = contexts[where]
            context = (state, done or where in settled, p_trade)
        try:
            duplicate, settlement = core.check(sender, kind, item, earlier.get(key) or stored.get(key), context)
        except p.ProtocolError as exc:
            replies.append((sender, kind, exc, []))
            continue
        if duplicate:
            duplicates += 1
            replies.append((sender, kind, None, [core.ack(sender, msg.msg_id, kind, msg.interval, True)]))
            continue
        out = [core.ack(sender, msg.msg_id, kind, msg.interval)]
        if settlement is not None:
            settled.add(where)
            settlements.append(settlement)
            out.append(core.settlement_out(msg.interval, settlement))
        else:
            book.append((msg.interval, 0 if kind == "order" else 1, msg))
        earlier[key] = (kind, item.hash)
        accepted.append(StoredMessage(sender, msg.msg_id, kind, msg.interval, item.hash, {}, text=item.text))
        replies.append((sender, kind, None, out))

    if accepted:  # durable (at the batch's commit) before anything is answered
        core.ledger.record_messages(accepted, settlements)
    return book, len(accepted), duplicates, replies
