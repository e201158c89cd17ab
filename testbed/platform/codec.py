"""A fast path for the protocol's hot messages: msgspec decodes and validates them in one pass.

:mod:`testbed.platform.protocol` stays the one definition of the protocol (its pydantic models, its error
codes). This module mirrors the models that the platform and its clients handle by the ten thousand
(order, offer, telemetry and gate in; ack, error, settlement, dispatch, open and result out) as msgspec
structs with the same fields and bounds, and is used as a filter in front of the reference decoder:

* a payload that the struct accepts is one the reference path accepts with the same values, so it is taken
  as it is (the struct is at least as strict: no coercion at all, patterns anchored at the very end of the
  string, no duplicate key, no NaN or Infinity, no overflow to infinity);
* a payload that the struct refuses for any reason goes through the reference path
  (:func:`protocol.decode <testbed.platform.protocol.decode>`), which gives the refusal its usual code and
  detail, or accepts it where the reference rules are more lenient (replies are read laxly).

So the error codes and details a sender gets are the reference path's, and a hostile payload costs what it
cost before; only well-formed messages get faster. ``tests/platform/test_platform_codec.py`` checks the
"struct accepts => reference accepts, equal values" rule on generated payloads.

JSON's duplicate keys are the one thing msgspec does not refuse (the last one wins). A struct's optional
fields default to ``UNSET`` here, so the keys a payload set are known. In a payload without a backslash no
string can hold a quote, so its quotes are exactly two per string (keys and string values); a key given twice
adds at least one string, so a quote count other than the one the struct implies, or any backslash, sends
the payload to the reference path (which refuses duplicates and unescapes strings as it always did).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
import msgspec.inspect
from msgspec import UNSET, Meta, Struct, UnsetType

from testbed.platform import protocol as p

# Python's ``$`` also matches before a final newline; ``\Z`` only at the very end (as pydantic's patterns).
_PID = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}\Z")]
_MSG_ID = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}\Z")]
_INTERVAL = Annotated[int, Meta(ge=0, le=2**53)]
_CLASS = Literal["green", "grey"] | None | UnsetType


class _Strict(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class OrderS(_Strict, kw_only=True):
    schema: Literal["fpp.order/1"]
    msg_id: _MSG_ID
    prosumer: _PID
    interval: _INTERVAL
    side: Literal["buy", "sell"]
    quantity_kw: Annotated[float, Meta(gt=0, le=1e5)]
    price_per_kwh: Annotated[float, Meta(ge=-10, le=10)]
    energy_class: _CLASS = UNSET


class FlexOfferS(_Strict, kw_only=True):
    schema: Literal["fpp.offer/1"]
    msg_id: _MSG_ID
    prosumer: _PID
    interval: _INTERVAL
    p_min_kw: Annotated[float, Meta(ge=-1e5, le=1e5)]
    p_max_kw: Annotated[float, Meta(ge=-1e5, le=1e5)]
    cost_a: Annotated[float, Meta(ge=0, le=1e3)]
    cost_b: Annotated[float, Meta(ge=-10, le=10)]
    energy_class: _CLASS = UNSET


class TelemetryS(_Strict, kw_only=True):
    schema: Literal["fpp.telemetry/1"]
    msg_id: _MSG_ID
    prosumer: _PID
    interval: _INTERVAL
    e_export_kwh: Annotated[float, Meta(ge=0, le=1e5)]
    e_import_kwh: Annotated[float, Meta(ge=0, le=1e5)]
    soc: Annotated[float, Meta(ge=0, le=1)] | None | UnsetType = UNSET


class GateClosureS(_Strict, kw_only=True):
    schema: Literal["fpp.gate/1"]
    msg_id: _MSG_ID
    interval: _INTERVAL
    t_s: Annotated[float, Meta(ge=0)]


# ---- replies (the platform's messages as a client reads them) -------------------------------------------


class AckS(_Strict, kw_only=True):
    schema: Literal["fpp.ack/1"] | UnsetType = UNSET
    msg_id: str
    kind: str
    interval: int
    duplicate: bool | UnsetType = UNSET


class ErrorMsgS(_Strict, kw_only=True):
    schema: Literal["fpp.error/1"] | UnsetType = UNSET
    msg_id: str | None
    code: str
    detail: str


class TradeS(_Strict, kw_only=True):
    seller: str
    buyer: str
    p_kw: float
    e_kwh: float
    price_per_kwh: float
    energy_class: str | None | UnsetType = UNSET


class SettlementS(_Strict, kw_only=True):
    schema: Literal["fpp.settlement/1"] | UnsetType = UNSET
    prosumer: str
    interval: int
    kind: Literal["market", "imbalance"]
    p_trade_kw: float
    e_kwh: float
    amount: float
    trades: list[TradeS] | UnsetType = UNSET


class DispatchS(_Strict, kw_only=True):
    schema: Literal["fpp.dispatch/1"] | UnsetType = UNSET
    prosumer: str
    interval: int
    p_kw: float


class IntervalOpenS(_Strict, kw_only=True):
    schema: Literal["fpp.open/1"] | UnsetType = UNSET
    interval: int
    interval_s: float
    import_price_per_kwh: float | None
    export_price_per_kwh: float | None


class MarketResultS(_Strict, kw_only=True):
    schema: Literal["fpp.result/1"] | UnsetType = UNSET
    interval: int
    gate_msg_id: str
    mechanism: str
    status: str
    reason: str | UnsetType = UNSET
    price_per_kwh: float | None
    trades: list[TradeS]
    n_orders: int
    n_offers: int


INBOUND_STRUCTS: dict[str, type[Struct]] = {
    "order": OrderS,
    "offer": FlexOfferS,
    "telemetry": TelemetryS,
    "gate": GateClosureS,
}
REPLY_STRUCTS: dict[str, type[Struct]] = {
    "ack": AckS,
    "error": ErrorMsgS,
    "settlement": SettlementS,
    "dispatch": DispatchS,
    "open": IntervalOpenS,
    "result": MarketResultS,
}
_INBOUND = {k: msgspec.json.Decoder(t) for k, t in INBOUND_STRUCTS.items()}
_REPLY = {k: msgspec.json.Decoder(t) for k, t in REPLY_STRUCTS.items()}
_FIELDS = {t: t.__struct_fields__ for t in [*INBOUND_STRUCTS.values(), *REPLY_STRUCTS.values(), TradeS]}
# what the reference models fill in for a field left out
_DEFAULTS: dict[type, dict[str, Any]] = {
    AckS: {"schema": "fpp.ack/1", "duplicate": False},
    ErrorMsgS: {"schema": "fpp.error/1"},
    SettlementS: {"schema": "fpp.settlement/1", "trades": []},
    DispatchS: {"schema": "fpp.dispatch/1"},
    IntervalOpenS: {"schema": "fpp.open/1"},
    MarketResultS: {"schema": "fpp.result/1", "reason": ""},
}
_NONE: dict[str, Any] = {}
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)
_encode = msgspec.json.Encoder().encode


def _plan(t: type[Struct]) -> tuple[int, tuple[int, ...]]:
    """For a struct type: the JSON strings its required fields always make (a key each, and the value of a
    string field), and the positions of the fields whose share depends on the value (optional, nullable,
    lists)."""
    fixed, variable = 0, []
    for i, f in enumerate(msgspec.inspect.type_info(t).fields):
        if f.required and isinstance(f.type, msgspec.inspect.StrType | msgspec.inspect.LiteralType):
            fixed += 2
        elif f.required and isinstance(f.type, msgspec.inspect.IntType | msgspec.inspect.FloatType):
            fixed += 1
        else:
            variable.append(i)
    return fixed, tuple(variable)


_PLANS = {t: _plan(t) for t in _FIELDS}


def _settle(obj: Any) -> tuple[int, Any]:
    """How many JSON strings (keys and string values) a duplicate-free payload of ``obj`` holds, and ``obj``
    with the fields the payload left out (``UNSET``) given the reference model's defaults."""
    t = type(obj)
    n, variable = _PLANS[t]
    changes: dict[str, Any] | None = None
    values = msgspec.structs.astuple(obj)
    for i in variable:
        value = values[i]
        if value is UNSET:
            if changes is None:
                changes = {}
            name = _FIELDS[t][i]
            default = _DEFAULTS.get(t, _NONE).get(name)
            changes[name] = [] if type(default) is list else default  # a list of its own for each message
            continue
        kind = type(value)
        n += 2 if kind is str else 1
        if kind is list:
            items, changed = [], False
            for item in value:
                m, settled = _settle(item)
                n += m
                items.append(settled)
                changed = changed or settled is not item
            if changed:
                if changes is None:
                    changes = {}
                changes[_FIELDS[t][i]] = items
    if changes:
        obj = msgspec.structs.replace(obj, **changes)
    return n, obj


def _take(decoder: msgspec.json.Decoder, payload: bytes) -> Any | None:
    """The struct of ``payload``, or None if the fast path does not take it (see the module docstring)."""
    if b"\\" in payload:
        return None
    try:
        obj = decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    n, obj = _settle(obj)
    # without backslashes every '"' delimits a string: a key given twice adds at least one string
    return obj if payload.count(b'"') == 2 * n else None


def as_dict(obj: Any) -> dict[str, Any]:
    """A decoded struct's fields as its reference model dumps them (``mode="json"``, aliases)."""
    out: dict[str, Any] = {}
    for name, value in zip(_FIELDS[type(obj)], msgspec.structs.astuple(obj), strict=True):
        if type(value) is list:
            value = [as_dict(t) for t in value]
        out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class Inbound:
    """One accepted inbound message, decoded, validated and hashed once.

    ``msg``: its struct (fast path) or its reference model (a kind without a struct, or a payload only the
    reference path takes); both have the protocol's field names. ``text``: its canonical JSON (sorted keys,
    no blanks), which the ledger stores; ``hash``: the SHA-256 of ``text``, equal to
    :func:`protocol.payload_hash <testbed.platform.protocol.payload_hash>` of the model.
    """

    msg: Any
    text: str
    hash: str


def decode_inbound(kind: str, payload: bytes, max_bytes: int = p.MAX_PAYLOAD_BYTES) -> Inbound:
    """Validate one inbound payload of ``kind`` like :func:`protocol.decode <testbed.platform.protocol.decode>`
    (the same refusals, codes and details) and hash it; :class:`~testbed.platform.protocol.ProtocolError`."""
    decoder = _INBOUND.get(kind)
    obj = _take(decoder, payload) if decoder is not None and len(payload) <= max_bytes else None
    if obj is not None:
        text = _canonical_inbound(obj)
    else:
        obj = p.decode(kind, payload, max_bytes)
        text = _CANONICAL.encode(obj.model_dump(mode="json", by_alias=True))
    return Inbound(obj, text, hashlib.sha256(text.encode()).hexdigest())


_SORTED = {t: sorted(range(len(t.__struct_fields__)), key=lambda i, t=t: t.__struct_fields__[i])
           for t in INBOUND_STRUCTS.values()}
_KEYS = {t: [f'"{t.__struct_fields__[i]}":' for i in _SORTED[t]] for t in INBOUND_STRUCTS.values()}


def _canonical_inbound(obj: Any) -> str:
    """``canonical(as_dict(obj))`` of a settled inbound struct, written directly. Its strings are patterns or
    literals of letters, digits and ``_.:-`` (nothing JSON escapes); its numbers are ints and finite floats,
    which JSON writes as ``repr`` does; None is ``null``. The codec tests compare it with the reference."""
    values = msgspec.structs.astuple(obj)
    parts = []
    for key, i in zip(_KEYS[type(obj)], _SORTED[type(obj)], strict=True):
        v = values[i]
        kind = type(v)
        if kind is str:
            parts.append(f'{key}"{v}"')
        elif v is None:
            parts.append(key + "null")
        elif kind is float:
            parts.append(key + float.__repr__(v))
        elif kind is int:
            parts.append(key + int.__repr__(v))
        else:  # not a type of an inbound struct's field: let JSON write it
            parts.append(key + _CANONICAL.encode(v))
    return "{" + ",".join(parts) + "}"


def decode_reply(kind: str, payload: bytes, max_bytes: int = 1 << 20) -> Any:
    """A platform message as a client reads it: the struct of ``kind`` (see :data:`REPLY_STRUCTS`), taken
    by the fast path, or else by :func:`protocol.decode_reply <testbed.platform.protocol.decode_reply>` (the
    same refusals) and converted; :class:`~testbed.platform.protocol.ProtocolError` if it is not one."""
    decoder = _REPLY.get(kind)
    obj = _take(decoder, payload) if decoder is not None and len(payload) <= max_bytes else None
    if obj is not None:
        return obj
    model = p.decode_reply(kind, payload, max_bytes)
    return msgspec.convert(model.model_dump(mode="json", by_alias=True), REPLY_STRUCTS[kind])


# ---- encoding the platform's messages -----------------------------------------------------------------


KIND_OF: dict[type, str] = {OrderS: "order", FlexOfferS: "offer", TelemetryS: "telemetry"}
"""The kind of a prosumer message's struct."""


def prosumer_message(kind: str, fields: dict[str, Any]) -> Any:
    """A prosumer's ``order``, ``offer`` or ``telemetry`` as its struct, built from ``fields`` with the checks
    the platform's fast path makes (types, patterns, ranges; ``msgspec.ValidationError`` otherwise): what a
    client sends many of without building the reference model."""
    return _settle(msgspec.convert(fields, INBOUND_STRUCTS[kind]))[1]  # fields left out: the reference's defaults


def encode_message(msg: Any) -> bytes:
    """The payload of a prosumer message, a struct of this module or a reference model."""
    return _encode(msg) if isinstance(msg, Struct) else p.encode(msg)


def encode_ack(msg_id: str, kind: str, interval: int, duplicate: bool = False) -> bytes:
    return _encode(AckS(schema="fpp.ack/1", msg_id=msg_id, kind=kind, interval=interval, duplicate=duplicate))


def encode_dispatch(prosumer: str, interval: int, p_kw: float) -> bytes:
    return _encode(DispatchS(schema="fpp.dispatch/1", prosumer=prosumer, interval=interval, p_kw=float(p_kw)))


def trade(seller: str, buyer: str, p_kw: float, e_kwh: float, price: float, energy_class: str | None) -> TradeS:
    return TradeS(
        seller=seller,
        buyer=buyer,
        p_kw=float(p_kw),
        e_kwh=float(e_kwh),
        price_per_kwh=float(price),
        energy_class=energy_class,
    )


def encode_settlement(
    prosumer: str, interval: int, kind: str, p_kw: float, e_kwh: float, amount: float, trades: list[TradeS]
) -> bytes:
    return _encode(
        SettlementS(
            schema="fpp.settlement/1",
            prosumer=prosumer,
            interval=interval,
            kind=kind,  # type: ignore[arg-type]
            p_trade_kw=float(p_kw),
            e_kwh=float(e_kwh),
            amount=float(amount),
            trades=trades,
        )
    )


def encode_result(
    interval: int,
    gate_msg_id: str,
    mechanism: str,
    status: str,
    reason: str,
    price_per_kwh: float | None,
    trades: list[TradeS],
    n_orders: int,
    n_offers: int,
) -> bytes:
    return _encode(
        MarketResultS(
            schema="fpp.result/1",
            interval=interval,
            gate_msg_id=gate_msg_id,
            mechanism=mechanism,
            status=status,
            reason=reason,
            price_per_kwh=None if price_per_kwh is None else float(price_per_kwh),
            trades=trades,
            n_orders=n_orders,
            n_offers=n_offers,
        )
    )
