"""The platform's MQTT protocol, version 1: topics, payload schemas and their validation.

Pure: no MQTT, no clock. The service and the agents both import this module, so both ends agree on one
definition. ``docs/platform.md`` describes the same protocol for people.

Topic tree (``{pid}`` is a prosumer id, ``[A-Za-z0-9_.-]{1,64}``)::

    fpp/v1/p/{pid}/order        prosumer -> platform  Order           QoS 1
    fpp/v1/p/{pid}/offer        prosumer -> platform  FlexOffer       QoS 1
    fpp/v1/p/{pid}/telemetry    prosumer -> platform  Telemetry       QoS 1
    fpp/v1/p/{pid}/ack          platform -> prosumer  Ack             QoS 1
    fpp/v1/p/{pid}/error        platform -> prosumer  ErrorMsg        QoS 1
    fpp/v1/p/{pid}/settlement   platform -> prosumer  Settlement      QoS 1
    fpp/v1/p/{pid}/dispatch     platform -> prosumer  Dispatch        QoS 1
    fpp/v1/clock/gate           clock    -> platform  GateClosure     QoS 1
    fpp/v1/clock/ack            platform -> clock     Ack             QoS 1
    fpp/v1/clock/error          platform -> clock     ErrorMsg        QoS 1
    fpp/v1/market/open          platform -> all       IntervalOpen    QoS 1, retained
    fpp/v1/market/result        platform -> all       MarketResultMsg QoS 1, retained
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

VERSION = "v1"
ROOT = f"fpp/{VERSION}"
PROSUMER_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MSG_ID_RE = r"^[A-Za-z0-9_.:-]{1,128}$"
MAX_PAYLOAD_BYTES = 16_384
CLOCK_ID = "clock"
PLATFORM_ID = "platform"

# Inbound kinds of version 1 a prosumer may publish (register_inbound adds more), and outbound kinds the
# platform publishes per prosumer.
INBOUND_KINDS = ("order", "offer", "telemetry")
OUTBOUND_KINDS = ("ack", "error", "settlement", "dispatch")

Finite = Annotated[float, Field(allow_inf_nan=False)]
PositiveKw = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegKw = Annotated[float, Field(ge=0, allow_inf_nan=False)]
MsgId = Annotated[str, Field(pattern=MSG_ID_RE)]
Pid = Annotated[str, Field(pattern=PROSUMER_ID_RE.pattern)]
Interval = Annotated[int, Field(ge=0, le=2**53)]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class InboundMsg(_Msg):
    """Base of every message a sender publishes to the platform: strict JSON types, no coercion.

    A number field takes a JSON number only (an integer field a JSON integer only): ``"3"``, ``true`` or
    ``"1_0"`` are refused as ``invalid``, never converted. Unknown fields are refused too. A new inbound
    kind derives from this class and is added with :func:`register_inbound`; :func:`decode` then parses it
    with the same rules (size, UTF-8 JSON without NaN or duplicate keys, schema version, strict fields).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


# ---- prosumer -> platform -------------------------------------------------------------------------------


class Order(InboundMsg):
    """A buy or sell order for one market interval (constant power over the interval)."""

    schema_: Literal["fpp.order/1"] = Field(alias="schema")
    msg_id: MsgId
    prosumer: Pid
    interval: Interval
    side: Literal["buy", "sell"]
    quantity_kw: PositiveKw = Field(le=1e5)
    price_per_kwh: Finite = Field(ge=-10, le=10)
    energy_class: Literal["green", "grey"] | None = None


class FlexOffer(InboundMsg):
    """Flexibility for one interval: a net power range (generator convention) and its cost curve.

    Cost rate 0.5*cost_a*p**2 + cost_b*p [currency/h] for p in [p_min_kw, p_max_kw].
    """

    schema_: Literal["fpp.offer/1"] = Field(alias="schema")
    msg_id: MsgId
    prosumer: Pid
    interval: Interval
    p_min_kw: Finite = Field(ge=-1e5, le=1e5)
    p_max_kw: Finite = Field(ge=-1e5, le=1e5)
    cost_a: NonNegKw = Field(le=1e3)
    cost_b: Finite = Field(ge=-10, le=10)
    energy_class: Literal["green", "grey"] | None = None


class Telemetry(InboundMsg):
    """What the prosumer's meter measured over a past interval (generator convention)."""

    schema_: Literal["fpp.telemetry/1"] = Field(alias="schema")
    msg_id: MsgId
    prosumer: Pid
    interval: Interval
    e_export_kwh: NonNegKw = Field(le=1e5)
    e_import_kwh: NonNegKw = Field(le=1e5)
    soc: Finite | None = Field(default=None, ge=0, le=1)


class GateClosure(InboundMsg):
    """The clock closes the gate of an interval: no more orders; the platform clears it."""

    schema_: Literal["fpp.gate/1"] = Field(alias="schema")
    msg_id: MsgId
    interval: Interval
    t_s: Finite = Field(ge=0)


INBOUND_MODELS: dict[str, type[InboundMsg]] = {}
SCHEMAS: dict[str, str] = {}
PROSUMER_KINDS: list[str] = []
"""Inbound kinds a prosumer may publish on ``fpp/v1/p/{pid}/{kind}`` (INBOUND_KINDS, then any registered)."""


def register_inbound(kind: str, model: type[InboundMsg], *, role: Literal["prosumer", "clock"]) -> None:
    """Make ``kind`` an inbound message kind parsed into ``model`` (its ``schema`` literal is the version).

    ``role`` says who may send it: ``prosumer`` kinds arrive on ``fpp/v1/p/{pid}/{kind}`` and must name the
    topic's prosumer; ``clock`` kinds arrive on the clock's own topic. Nothing else decides a sender's rights.
    """
    if not issubclass(model, InboundMsg):
        raise TypeError(f"{model.__name__} must derive from InboundMsg (strict fields)")
    schema = model.model_fields["schema_"].annotation
    versions = getattr(schema, "__args__", ())
    if len(versions) != 1:
        raise TypeError(f"{model.__name__}.schema_ must be one Literal version string")
    INBOUND_MODELS[kind] = model
    SCHEMAS[kind] = versions[0]
    if role == "prosumer" and kind not in PROSUMER_KINDS:
        PROSUMER_KINDS.append(kind)


register_inbound("order", Order, role="prosumer")
register_inbound("offer", FlexOffer, role="prosumer")
register_inbound("telemetry", Telemetry, role="prosumer")
register_inbound("gate", GateClosure, role="clock")


# ---- platform -> prosumers ------------------------------------------------------------------------------


class Ack(_Msg):
    schema_: Literal["fpp.ack/1"] = Field(default="fpp.ack/1", alias="schema")
    msg_id: str
    kind: str
    interval: int
    duplicate: bool = False


class ErrorMsg(_Msg):
    schema_: Literal["fpp.error/1"] = Field(default="fpp.error/1", alias="schema")
    msg_id: str | None
    code: str
    detail: str


class TradeMsg(_Msg):
    seller: str
    buyer: str
    p_kw: float
    e_kwh: float
    price_per_kwh: float
    energy_class: str | None = None


class Settlement(_Msg):
    """One prosumer's settlement for one interval: market part at clearing, imbalance after telemetry."""

    schema_: Literal["fpp.settlement/1"] = Field(default="fpp.settlement/1", alias="schema")
    prosumer: str
    interval: int
    kind: Literal["market", "imbalance"]
    p_trade_kw: float
    e_kwh: float
    amount: float  # > 0: the prosumer pays
    trades: list[TradeMsg] = []


class Dispatch(_Msg):
    """The net power setpoint the prosumer's trades commit it to for the interval (generator convention)."""

    schema_: Literal["fpp.dispatch/1"] = Field(default="fpp.dispatch/1", alias="schema")
    prosumer: str
    interval: int
    p_kw: float


class IntervalOpen(_Msg):
    schema_: Literal["fpp.open/1"] = Field(default="fpp.open/1", alias="schema")
    interval: int
    interval_s: float
    import_price_per_kwh: float | None
    export_price_per_kwh: float | None


class MarketResultMsg(_Msg):
    schema_: Literal["fpp.result/1"] = Field(default="fpp.result/1", alias="schema")
    interval: int
    gate_msg_id: str
    mechanism: str
    status: str
    reason: str = ""
    price_per_kwh: float | None
    trades: list[TradeMsg]
    n_orders: int
    n_offers: int


# ---- topics ---------------------------------------------------------------------------------------------


def prosumer_topic(pid: str, kind: str) -> str:
    return f"{ROOT}/p/{pid}/{kind}"


GATE_TOPIC = f"{ROOT}/clock/gate"
CLOCK_ACK_TOPIC = f"{ROOT}/clock/ack"
CLOCK_ERROR_TOPIC = f"{ROOT}/clock/error"
OPEN_TOPIC = f"{ROOT}/market/open"
RESULT_TOPIC = f"{ROOT}/market/result"


def inbound_subscriptions() -> list[str]:
    """The topic filters the platform subscribes to: every registered prosumer kind and the gate topic."""
    return [f"{ROOT}/p/+/{kind}" for kind in PROSUMER_KINDS] + [GATE_TOPIC]


def parse_topic(topic: str) -> tuple[str, str] | None:
    """``(sender id, kind)`` of an inbound topic, or None if the platform does not listen there.

    The topic decides the role: the clock's gate topic gives ``(CLOCK_ID, "gate")``; a prosumer topic gives
    only the kinds a prosumer may send (``fpp/v1/p/x/gate`` is not an inbound topic).
    """
    if topic == GATE_TOPIC:
        return CLOCK_ID, "gate"
    parts = topic.split("/")
    if (
        len(parts) == 5
        and parts[0] == "fpp"
        and parts[1] == VERSION
        and parts[2] == "p"
        and parts[4] in PROSUMER_KINDS
    ):
        return parts[3], parts[4]
    return None


# ---- decoding -------------------------------------------------------------------------------------------


class ProtocolError(Exception):
    """A message that the platform refuses, with a stable ``code`` and a human ``detail``."""

    def __init__(self, code: str, detail: str, msg_id: str | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.msg_id = msg_id


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def load_json_object(payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """One message's JSON object: at most ``max_bytes``, UTF-8, no NaN/Infinity, no key twice (nesting too
    deep for the parser is refused too); :class:`ProtocolError` (``oversized`` or ``malformed_json``)."""
    if len(payload) > max_bytes:
        raise ProtocolError("oversized", f"payload of {len(payload)} bytes exceeds {max_bytes}")
    try:
        data = json.loads(
            payload.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError("malformed_json", f"not UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("malformed_json", f"expected a JSON object, got {type(data).__name__}")
    return data


def decode(kind: str, payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> InboundMsg:
    """Validate one inbound payload of ``kind``; raise :class:`ProtocolError` naming what is wrong."""
    if len(payload) > max_bytes:
        raise ProtocolError("oversized", f"payload of {len(payload)} bytes exceeds {max_bytes}")
    model = INBOUND_MODELS.get(kind)
    if model is None:
        raise ProtocolError("unknown_kind", f"no message kind {kind!r}; expected one of {sorted(INBOUND_MODELS)}")
    data = load_json_object(payload, max_bytes)
    msg_id = data.get("msg_id") if isinstance(data.get("msg_id"), str) else None
    schema = data.get("schema")
    if schema != SCHEMAS[kind]:
        raise ProtocolError(
            "schema_version",
            f"schema {schema!r} is not supported on this topic; expected {SCHEMAS[kind]!r}",
            msg_id,
        )
    return validate_strict(model, data, msg_id)


def validate_strict(model: type[_Msg], data: dict[str, Any], msg_id: str | None = None) -> Any:
    """``model`` validated from parsed JSON ``data``; :class:`ProtocolError` ``invalid`` naming up to ten
    fields and why (an :class:`InboundMsg` takes no coercion: see its docstring)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:10]
        )
        raise ProtocolError("invalid", problems, msg_id) from None


REPLY_MODELS: dict[str, type[_Msg]] = {
    "ack": Ack,
    "error": ErrorMsg,
    "settlement": Settlement,
    "dispatch": Dispatch,
    "open": IntervalOpen,
    "result": MarketResultMsg,
}


def decode_reply(kind: str, payload: bytes, max_bytes: int = 1 << 20) -> _Msg:
    """Validate a message the platform published (a client reads these); :class:`ProtocolError` if it is not
    one, so that a forged or broken reply is dropped by the reader instead of stopping it."""
    model = REPLY_MODELS.get(kind)
    if model is None:
        raise ProtocolError("unknown_kind", f"no reply kind {kind!r}; expected one of {sorted(REPLY_MODELS)}")
    data = load_json_object(payload, max_bytes)
    return validate_strict(model, data, data.get("msg_id") if isinstance(data.get("msg_id"), str) else None)


def encode(msg: _Msg) -> bytes:
    return msg.model_dump_json(by_alias=True).encode()


def payload_hash(msg: _Msg) -> str:
    """A stable digest of a validated message: a retry has the same one, a reused id a different one."""
    canonical = json.dumps(msg.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)
