"""The platform's message handling, independent of MQTT: one inbound message in, outbound messages out.

:class:`PlatformCore` validates a message (size, topic, JSON, schema version, values, sender identity),
makes it idempotent by its id against the ledger, stores it before acknowledging it, and at gate closure
clears the interval, writes the clearing in one ledger transaction and produces trades, settlements and
dispatch. Every refusal is an ``error`` message to the sender plus a log line; nothing here raises for bad
input, so the service keeps serving.

Roles come from topics, never from ids: the clock's gate topic carries gate closures only, a prosumer topic
carries only its registered prosumer's kinds (the clock account is no prosumer and cannot trade). An
unexpected exception while handling a message (a bug, a broken ledger) is answered with an ``internal``
error, logged with the message id, and the message is recorded by the digest of its topic and bytes, so a
retry of it is answered ``internal`` again instead of failing again (or crashing a restarted platform).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from testbed.domain.prosumer import Tariff
from testbed.platform import codec, intake
from testbed.platform import protocol as p
from testbed.platform.clearing import Outcome, clear_interval, imbalance_amount
from testbed.platform.ledger import Ledger, StoredMessage
from testbed.platform.services_core import ServicesCore

log = logging.getLogger(__name__)


class Out(NamedTuple):
    """One message to publish (a named tuple: the core makes one per reply)."""

    topic: str
    payload: bytes
    retain: bool = False


@dataclass(frozen=True)
class PlatformConfig:
    interval_s: float = 900.0
    mechanism: str = "double-auction"
    tariff: Tariff | None = None
    max_payload_bytes: int = p.MAX_PAYLOAD_BYTES
    max_intervals_ahead: int = 192
    """Orders and the clock's gates are accepted for at most this many intervals after the last closed one."""
    first_interval: int = 0
    """The first interval open on a new ledger (the wall clock's current interval; 0 in simulation time)."""


class PlatformCore:
    #: Whether the clearing takes the open intervals' orders from memory (:attr:`book`). A core that shares its
    #: ledger with other writers (platform workers) reads them from the ledger: it has not seen them all.
    keeps_book = True
    #: Whether a batch's orders, offers and meter readings are checked and stored together
    #: (:mod:`testbed.platform.intake`): only where this core is the ledger's one writer (SQLite).
    batches_intake = True

    def __init__(self, ledger: Ledger, config: PlatformConfig) -> None:
        self.ledger = ledger
        self.config = config
        self.batches_intake = self.batches_intake and ledger.kind == "sqlite"
        self.prosumers = ledger.prosumers()
        self.last_closed = ledger.last_closed_interval()
        self.failed = ledger.failures()
        self.stats = {"accepted": 0, "duplicates": 0, "errors": 0, "cleared": 0, "internal": 0, "failed_batches": 0}
        self.services = ServicesCore(ledger, self.prosumers, Out)
        self.book: dict[int, tuple[list, list]] = {}
        """The accepted orders and offers of each open interval, in arrival order, as they are in the ledger:
        the clearing reads them from here. Filled from the ledger when the core starts (and after a batch
        that did not commit); an interval missing here is read from the ledger."""
        self._load_book()

    def _load_book(self) -> None:
        """The open intervals' orders and offers, from the ledger (at start, or after a failed commit)."""
        self.book = {}
        if not self.keeps_book:
            return
        base = self._base
        for kind, i in (("order", 0), ("offer", 1)):
            for m in self.ledger.messages_after(kind, base):
                self.book.setdefault(m.interval, ([], []))[i].append(_model(kind, m.payload))

    # ---- entry points ----------------------------------------------------------------------------

    def recover(self) -> list[Out]:
        """Clear intervals that were closed but not cleared when the platform last stopped."""
        out: list[Out] = []
        for k in self.ledger.unclear_intervals():
            _, gate_id, t_s, _ = self.ledger.interval(k)
            log.warning("interval %d was closed but not cleared before the restart: clearing it now", k)
            try:
                out += self._clear(k, gate_id, t_s or 0.0)
            except Exception:  # serve anyway; the interval stays closed-not-cleared for the next start
                self.stats["internal"] += 1
                log.exception("clearing interval %d at start failed; it stays closed and uncleared", k)
        return out

    @property
    def _base(self) -> int:
        """The last closed interval, or the one before the first interval on a new ledger."""
        return self.config.first_interval - 1 if self.last_closed is None else self.last_closed

    def open_message(self) -> Out:
        k = self._base + 1
        t = self.config.tariff
        msg = p.IntervalOpen(
            interval=k,
            interval_s=self.config.interval_s,
            import_price_per_kwh=t.import_price_per_kwh if t else None,
            export_price_per_kwh=t.export_price_per_kwh if t else None,
        )
        return Out(p.OPEN_TOPIC, p.encode(msg), retain=True)

    def handle_batch(self, messages: Sequence[tuple[str, bytes]]) -> list[Out]:
        """Group commit: handle ``(topic, payload)`` messages in arrival order inside one ledger transaction
        and return their replies only once it is committed, so no acknowledgement precedes its commit.

        Each message is still atomic on its own (a savepoint of the batch); runs of orders, offers and meter
        readings are checked and stored together (:mod:`testbed.platform.intake`, the same outcome for each
        message as one by one). If the commit itself fails,
        nothing is answered (every sender retries with the same ``msg_id``) and the state kept in memory is
        read back from the ledger.
        """
        outs: list[Out] = []
        try:
            with self.ledger.batch():
                run: intake.Run = []  # consecutive orders, offers and meter readings: checked and stored together
                for topic, payload in messages:
                    where = intake.runnable(self, topic, payload)
                    if where is not None:
                        run.append((*where, topic, payload))
                        continue
                    if run:
                        outs += intake.handle_run(self, run)
                        run = []
                    outs += self.handle(topic, payload)
                if run:
                    outs += intake.handle_run(self, run)
        except Exception:
            self.stats["failed_batches"] += 1
            log.exception("committing a batch of %d messages failed; none is answered", len(messages))
            self.last_closed = self.ledger.last_closed_interval()
            self.failed = self.ledger.failures()
            self._load_book()
            return []
        return outs

    def handle(self, topic: str, payload: bytes) -> list[Out]:
        """Handle one inbound message; never raises for anything a sender can put in it."""
        services = self.services.handle(topic, payload)  # grid-service contracts (services_protocol)
        if services is not None:
            return services
        where = p.parse_topic(topic)
        if where is None:
            log.warning("message on unexpected topic %r ignored", topic)
            return []
        sender, kind = where
        digest = ""
        msg_id: str | None = None
        try:
            if self.failed:
                digest = _digest(topic, payload)
                if digest in self.failed:  # this very message made the platform fail before: do not run it again
                    raise p.ProtocolError("internal", self.failed[digest], _best_msg_id(payload))
            if kind != "gate" and sender in (p.CLOCK_ID, p.PLATFORM_ID):
                raise p.ProtocolError("role", f"the {sender!r} account sends no {kind}: it is not a prosumer")
            if kind != "gate" and sender not in self.prosumers:
                raise p.ProtocolError("unknown_prosumer", f"{sender!r} is not registered on this platform")
            inbound = codec.decode_inbound(kind, payload, self.config.max_payload_bytes)
            msg_id = getattr(inbound.msg, "msg_id", None)
            if kind == "gate":
                return self._gate(inbound.msg)
            return self._prosumer_message(sender, kind, inbound)
        except p.ProtocolError as exc:
            return self.refusal(sender, kind, exc)
        except Exception as exc:  # a bug or a broken ledger: answer, record, keep serving
            self.stats["internal"] += 1
            msg_id = msg_id or _best_msg_id(payload)
            log.exception("internal error handling %s from %s (msg_id=%s)", kind, sender, msg_id)
            detail = (
                f"the platform failed on this message ({type(exc).__name__}); the operator has it in the log. "
                "The same message gets this answer again: send a new msg_id"
            )
            digest = digest or _digest(topic, payload)
            try:
                self.ledger.record_failure(digest, sender, kind, msg_id, detail)
            except Exception:
                log.exception("could not record the failed message %s in the ledger", msg_id)
            self.failed[digest] = detail
            return self._error(sender, kind, p.ErrorMsg(msg_id=msg_id, code="internal", detail=detail))

    @staticmethod
    def settlement_out(interval: int, row: tuple) -> Out:
        """The settlement message of a meter reading's imbalance settlement row."""
        return _settlement_out(interval, row, [])

    @staticmethod
    def digest(topic: str, payload: bytes) -> str:
        return _digest(topic, payload)

    def refusal(self, sender: str, kind: str, exc: p.ProtocolError) -> list[Out]:
        """Count, log and answer a refused message."""
        self.stats["errors"] += 1
        log.info("refused %s from %s: %s (msg_id=%s)", kind, sender, exc, exc.msg_id)
        return self._error(sender, kind, p.ErrorMsg(msg_id=exc.msg_id, code=exc.code, detail=exc.detail))

    def _error(self, sender: str, kind: str, err: p.ErrorMsg) -> list[Out]:
        if kind == "gate":
            return [Out(p.CLOCK_ERROR_TOPIC, p.encode(err))]
        if not p.PROSUMER_ID_RE.match(sender):
            return []  # not a topic we could answer on
        return [Out(p.prosumer_topic(sender, "error"), p.encode(err))]

    def close_gate(self, k: int, t_s: float) -> list[Out]:
        """Wall-clock mode: the service's own clock closes interval ``k`` (any distance ahead: after a long
        stop the wall clock is far past the last closed interval)."""
        return self._gate(
            p.GateClosure.model_validate(
                {"schema": "fpp.gate/1", "msg_id": f"wall-{k}", "interval": k, "t_s": float(t_s)}
            ),
            own_clock=True,
        )

    # ---- prosumer messages -----------------------------------------------------------------------

    def _prosumer_message(self, sender: str, kind: str, inbound: codec.Inbound) -> list[Out]:
        msg = inbound.msg  # the kind's struct or model (same fields): an order, offer or telemetry
        if kind not in ("order", "offer", "telemetry"):
            raise TypeError(f"unexpected message kind {kind!r} for the market core")
        duplicate, settlement = self.check(sender, kind, inbound, self.ledger.find_message_hash(sender, msg.msg_id))
        if duplicate:
            self.stats["duplicates"] += 1
            return [self.ack(sender, msg.msg_id, kind, msg.interval, duplicate=True)]
        digest = inbound.hash
        # the ledger stores the canonical text that was hashed (no payload dict needed to dump it again)
        stored = StoredMessage(sender, msg.msg_id, kind, msg.interval, digest, {}, text=inbound.text)
        if not self.ledger.record_message(stored, settlement):  # durable before the acknowledgement
            return self._prosumer_message(sender, kind, inbound)  # another worker stored it meanwhile: a duplicate
        if kind != "telemetry" and self.keeps_book:  # the clearing takes it from memory (nothing below can fail)
            self.book.setdefault(msg.interval, ([], []))[0 if kind == "order" else 1].append(msg)
        self.stats["accepted"] += 1
        out = [self.ack(sender, msg.msg_id, kind, msg.interval)]
        if settlement is not None:
            out.append(_settlement_out(msg.interval, settlement, []))
        return out

    def check(
        self, sender: str, kind: str, inbound: codec.Inbound, seen: tuple[str, str] | None, context: tuple | None = None
    ) -> tuple[bool, tuple | None]:
        """Check a prosumer's order, offer or meter reading before it is stored: ``(duplicate, settlement)``, or
        :class:`~testbed.platform.protocol.ProtocolError`. ``seen``: ``(kind, hash)`` of the message already
        stored with its id, if any; ``context``: a meter reading's :meth:`_telemetry_settlement` context when the
        caller has it. ``settlement``: a meter reading's imbalance settlement row."""
        msg = inbound.msg
        if msg.prosumer != sender:
            raise p.ProtocolError(
                "identity", f"payload prosumer {msg.prosumer!r} differs from the topic's {sender!r}", msg.msg_id
            )
        if seen is not None:
            if seen != (kind, inbound.hash):
                raise p.ProtocolError(
                    "duplicate_id", f"msg_id {msg.msg_id!r} was already used for a different message", msg.msg_id
                )
            return True, None
        if kind == "telemetry":
            return False, self._telemetry_settlement(msg, context)  # raises if the interval is not cleared yet
        self._check_open(msg.interval, msg.msg_id)
        if kind == "offer" and msg.p_min_kw > msg.p_max_kw:
            raise p.ProtocolError("invalid", "p_min_kw exceeds p_max_kw", msg.msg_id)
        return False, None

    def _check_open(self, k: int, msg_id: str) -> None:
        base = self._base
        if k <= base:
            raise p.ProtocolError("late", f"gate of interval {k} is closed (last closed: {base})", msg_id)
        if k > base + self.config.max_intervals_ahead:
            raise p.ProtocolError(
                "too_early",
                f"interval {k} is more than {self.config.max_intervals_ahead} "
                f"intervals after the last closed one ({base})",
                msg_id,
            )

    def _telemetry_settlement(self, msg: codec.TelemetryS | p.Telemetry, context: tuple | None = None) -> tuple:
        """The imbalance settlement row of a meter reading; ``context``: its :meth:`Ledger.telemetry_context
        <testbed.platform.ledger.Ledger.telemetry_context>` when the caller has it."""
        state, settled, p_trade = context or self.ledger.telemetry_context(msg.interval, msg.prosumer)
        if state != "cleared":
            raise p.ProtocolError(
                "not_cleared", f"telemetry for interval {msg.interval}, which is not cleared yet", msg.msg_id
            )
        if settled:
            raise p.ProtocolError(
                "already_settled",
                f"interval {msg.interval} is already settled from an earlier telemetry message of "
                f"{msg.prosumer!r}; a meter reading is sent once (a retry keeps its msg_id)",
                msg.msg_id,
            )
        p_trade = p_trade or 0.0
        e_trade = p_trade * self.config.interval_s / 3600.0
        amount = imbalance_amount(msg.e_export_kwh, msg.e_import_kwh, e_trade, self.config.tariff)
        gap = msg.e_export_kwh - msg.e_import_kwh - e_trade
        return (msg.interval, msg.prosumer, "imbalance", p_trade, gap, amount)

    def ack(self, pid: str, msg_id: str, kind: str, k: int, duplicate: bool = False) -> Out:
        topic = p.CLOCK_ACK_TOPIC if pid == p.CLOCK_ID else p.prosumer_topic(pid, "ack")
        return Out(topic, codec.encode_ack(msg_id, kind, k, duplicate))

    # ---- gate closure and clearing ---------------------------------------------------------------

    def _gate(self, msg: codec.GateClosureS | p.GateClosure, own_clock: bool = False) -> list[Out]:
        k = msg.interval
        state = self.ledger.interval(k)
        if state is not None:
            status, gate_id, t_s, result = state
            if gate_id != msg.msg_id:
                raise p.ProtocolError(
                    "duplicate_id", f"interval {k} was already closed by gate message {gate_id!r}", msg.msg_id
                )
            if status == "cleared":  # a retried gate: publish the stored result again
                self.stats["duplicates"] += 1
                return self._publish_clearing(k, result or {}) + [
                    self.ack(p.CLOCK_ID, msg.msg_id, "gate", k, duplicate=True)
                ]
            return self._clear(k, msg.msg_id, t_s or msg.t_s)
        if k <= self._base:
            raise p.ProtocolError(
                "late", f"interval {k} precedes the last closed interval {self._base}", msg.msg_id
            )
        if not own_clock and k > self._base + self.config.max_intervals_ahead:
            raise p.ProtocolError(
                "too_early",
                f"gate for interval {k}: gates close at most {self.config.max_intervals_ahead} intervals after "
                f"the last closed one ({self._base})",
                msg.msg_id,
            )
        self.ledger.close_interval(k, msg.msg_id, msg.t_s)
        self.last_closed = k
        for j in [j for j in self.book if j < k]:  # skipped by a clock that jumped ahead: never cleared
            del self.book[j]
        return self._clear(k, msg.msg_id, msg.t_s)

    def _clear(self, k: int, gate_id: str, t_s: float) -> list[Out]:
        book = self.book.pop(k, None)
        if book is not None:  # accepted since the core started: as stored, in arrival order
            orders, offers = book
        else:  # closed before a restart, or a clearing that failed: read it back
            orders = [_model("order", m.payload) for m in self.ledger.messages("order", k)]
            offers = [_model("offer", m.payload) for m in self.ledger.messages("offer", k)]
        classes = {pid: v[1] for pid, v in self.prosumers.items()}
        buses = {pid: v[0] for pid, v in self.prosumers.items()}
        interval_h = self.config.interval_s / 3600.0
        try:
            outcome = clear_interval(
                orders, offers, classes, buses, self.config.tariff, interval_h, self.config.mechanism
            )
        except Exception as exc:  # the clearing library failed: record it, keep serving
            log.exception("clearing interval %d failed", k)
            outcome = Outcome("error", f"clearing failed: {type(exc).__name__}: {exc}", None)
        trades = [(s, b, pk, pk * interval_h, pr, cls) for s, b, pk, pr, cls in outcome.trades]
        participants = sorted(
            set(o.prosumer for o in orders) | set(o.prosumer for o in offers) | set(outcome.dispatch_kw)
        )
        settlements = [
            (
                k,
                pid,
                "market",
                outcome.dispatch_kw.get(pid, 0.0),
                outcome.dispatch_kw.get(pid, 0.0) * interval_h,
                outcome.payments.get(pid, 0.0),
            )
            for pid in participants
        ]
        provenance = [
            (k * self.config.interval_s, s, buses.get(s), b, buses.get(b), e)
            for s, b, _, e, _, cls in trades
            if (cls or classes.get(s)) == "green"
        ]
        result = {
            "gate_msg_id": gate_id,
            "mechanism": self.config.mechanism,
            "status": outcome.status,
            "reason": outcome.reason,
            "price_per_kwh": outcome.price_per_kwh,
            "t_s": t_s,
            "n_orders": len(orders),
            "n_offers": len(offers),
            "trades": [list(t) for t in trades],
            "dispatch_kw": outcome.dispatch_kw,
            "settlements": [list(s) for s in settlements],
        }
        self.ledger.record_clearing(k, result, trades, settlements, provenance)
        self.stats["cleared"] += 1
        log.info(
            "interval %d cleared: %s, %d orders, %d offers, %d trades",
            k,
            outcome.status,
            len(orders),
            len(offers),
            len(trades),
        )
        return self._publish_clearing(k, result) + [self.ack(p.CLOCK_ID, gate_id, "gate", k)]

    def _publish_clearing(self, k: int, result: dict) -> list[Out]:
        trades = [codec.trade(*t) for t in result.get("trades", [])]
        mine: dict[str, list[codec.TradeS]] = {}
        for t in trades:
            mine.setdefault(t.seller, []).append(t)
            if t.buyer != t.seller:
                mine.setdefault(t.buyer, []).append(t)
        out: list[Out] = []
        for row in result.get("settlements", []):
            pid, p_kw = row[1], row[3]
            out.append(_settlement_out(k, row, mine.get(pid, [])))
            out.append(Out(p.prosumer_topic(pid, "dispatch"), codec.encode_dispatch(pid, k, p_kw)))
        res = codec.encode_result(
            k,
            result.get("gate_msg_id", ""),
            result.get("mechanism", ""),
            result.get("status", ""),
            result.get("reason", ""),
            result.get("price_per_kwh"),
            trades,
            result.get("n_orders", 0),
            result.get("n_offers", 0),
        )
        out.append(Out(p.RESULT_TOPIC, res, retain=True))
        self.last_closed = max(self.last_closed if self.last_closed is not None else k, k)
        out.append(self.open_message())
        return out


def _best_msg_id(payload: bytes) -> str | None:
    """The ``msg_id`` of a payload that may not even be JSON (for an error reply), else None."""
    try:
        data = p.load_json_object(payload, max_bytes=len(payload))
    except p.ProtocolError:
        return None
    msg_id = data.get("msg_id")
    return msg_id if isinstance(msg_id, str) and len(msg_id) <= 128 else None


def _settlement_out(interval: int, row, trades: list[codec.TradeS]) -> Out:
    """The settlement message of a ledger settlement row ``(interval, prosumer, kind, p_kw, e_kwh, amount)``."""
    _, pid, kind, p_kw, e_kwh, amount = row
    payload = codec.encode_settlement(pid, interval, kind, p_kw, e_kwh, amount, trades)
    return Out(p.prosumer_topic(pid, "settlement"), payload)


def _digest(topic: str, payload: bytes) -> str:
    """The digest of an inbound message's topic and bytes (how a message that failed is remembered)."""
    return hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()


def _model(kind: str, payload: dict) -> p.Order | p.FlexOffer:
    """An order or offer read back from the ledger (validated as when it was accepted)."""
    return (p.Order if kind == "order" else p.FlexOffer).model_validate(payload)
