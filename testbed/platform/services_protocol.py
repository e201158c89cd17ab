"""The platform's MQTT protocol for grid-service contracts, version 1 (pure: no MQTT, no clock).

The market's kinds live in :mod:`testbed.platform.protocol`; these are the federated power plant's. Parsing is
strict: a number must be a JSON number (no strings, no booleans), a text a JSON string, nothing unknown.

Topic tree (``{pid}`` a prosumer id; the operator is the account that runs the buyers' side and the clock of
the contract life cycle: advertising calendar and forecast contracts, closing offers, dispatching, settling)::

    fpp/v1/services/contract          operator -> platform  ContractMsg         advertise a contract
    fpp/v1/services/close             operator -> platform  ContractStep        close offers, select the coalition
    fpp/v1/services/dispatch          operator -> platform  DispatchMsg         the buyer's instruction per step
    fpp/v1/services/settle            operator -> platform  ContractStep        settle and share
    fpp/v1/services/ack               platform -> operator  Ack (protocol.Ack)
    fpp/v1/services/error             platform -> operator  ErrorMsg
    fpp/v1/services/result            platform -> operator  SelectionMsg | ContractSettlementMsg
    fpp/v1/services/advert/{seq}      platform -> all       AdvertMsg           retained, one per contract
    fpp/v1/p/{pid}/service_offer      prosumer -> platform  ServiceOfferMsg
    fpp/v1/p/{pid}/baseline           prosumer -> platform  BaselineMsg         before the dispatch
    fpp/v1/p/{pid}/delivery           prosumer -> platform  DeliveryMsg         metered power over the window
    fpp/v1/p/{pid}/award              platform -> prosumer  AwardMsg
    fpp/v1/p/{pid}/service_dispatch   platform -> prosumer  MemberDispatchMsg
    fpp/v1/p/{pid}/service_settlement platform -> prosumer  MemberSettlementMsg

A prosumer's messages are acknowledged on its ``ack`` topic (``fpp.ack/1``, ``interval`` = the contract's
sequence number) and refused on its ``error`` topic, as orders are. Every inbound message carries a ``msg_id``;
the same id with the same content is a retry (acknowledged again, applied once), with other content an error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from testbed.platform import protocol as p

OPERATOR_ID = "operator"
SERVICES = f"{p.ROOT}/services"
OPERATOR_KINDS = ("contract", "close", "dispatch", "settle")
PROSUMER_KINDS = ("service_offer", "baseline", "delivery")
MEMBER_OUT_KINDS = ("award", "service_dispatch", "service_settlement")
OPERATOR_ACK_TOPIC = f"{SERVICES}/ack"
OPERATOR_ERROR_TOPIC = f"{SERVICES}/error"
RESULT_TOPIC = f"{SERVICES}/result"
ADVERT_TOPICS = f"{SERVICES}/advert/+"
SUBSCRIPTIONS = (*(f"{SERVICES}/{k}" for k in OPERATOR_KINDS), *(f"{p.ROOT}/p/+/{k}" for k in PROSUMER_KINDS))
MAX_STEPS = 1440
"""A dispatch or delivery series has at most this many steps (a day at one minute)."""

Finite = Annotated[float, Field(allow_inf_nan=False, ge=-1e5, le=1e5)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False, le=1e5)]
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False, le=1e5)]
ContractId = Annotated[str, Field(pattern=p.MSG_ID_RE)]
MsgId = Annotated[str, Field(pattern=p.MSG_ID_RE)]
Pid = Annotated[str, Field(pattern=p.PROSUMER_ID_RE.pattern)]
Series = Annotated[list[Finite], Field(min_length=1, max_length=MAX_STEPS)]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True, populate_by_name=True)


# ---- operator -> platform -------------------------------------------------------------------------------


class ContractMsg(_Msg):
    """Advertise a contract (``contract`` as in docs/fpp.md; checked by ``parse_contract``)."""

    schema_: Literal["fpp.contract/1"] = Field(alias="schema")
    msg_id: MsgId
    contract: dict[str, Any]


class ContractStep(_Msg):
    """Close the offers of a contract (``fpp.service_close/1``) or settle it (``fpp.service_settle/1``)."""

    schema_: Literal["fpp.service_close/1", "fpp.service_settle/1"] = Field(alias="schema")
    msg_id: MsgId
    contract_id: ContractId
    sharing: Literal["shapley", "nucleolus", "least-core", "proportional"] = "shapley"
    """settle only: the rule that pays the members (every rule is computed and recorded)"""


class DispatchMsg(_Msg):
    """The buyer's instruction over the window: ``required_kw`` per step of ``step_s`` seconds, counted at the
    contract's location (>= 0 for up and down contracts, signed for both; zeros when held, not dispatched)."""

    schema_: Literal["fpp.service_dispatch/1"] = Field(alias="schema")
    msg_id: MsgId
    contract_id: ContractId
    step_s: Positive
    required_kw: Series


# ---- prosumer -> platform -------------------------------------------------------------------------------


class ServiceOfferMsg(_Msg):
    """A member's offer (the fields of ``testbed.domain.fpp.ServiceOffer``; its id is ``msg_id``)."""

    schema_: Literal["fpp.service_offer/1"] = Field(alias="schema")
    msg_id: MsgId
    contract_id: ContractId
    member: Pid
    bus: Annotated[str, Field(min_length=1, max_length=200)]
    capacity_kw: Positive
    capacity_sd_kw: NonNeg
    price_per_kw_h: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
    window: dict[str, str] | None = None
    sensitivity: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None

    def offer_data(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"schema_", "msg_id"}, exclude_none=True)
        return {"id": self.msg_id, **data}


class BaselineMsg(_Msg):
    """The member's declared baseline: its net power without the contract over the window [kW, generator
    convention], declared before the dispatch."""

    schema_: Literal["fpp.baseline/1"] = Field(alias="schema")
    msg_id: MsgId
    prosumer: Pid
    contract_id: ContractId
    p_baseline_kw: Finite


class DeliveryMsg(_Msg):
    """What the member's meter measured over the window, one value per step [kW, generator convention]."""

    schema_: Literal["fpp.delivery/1"] = Field(alias="schema")
    msg_id: MsgId
    prosumer: Pid
    contract_id: ContractId
    step_s: Positive
    p_meter_kw: Series


INBOUND_MODELS: dict[str, type[_Msg]] = {
    "contract": ContractMsg, "close": ContractStep, "dispatch": DispatchMsg, "settle": ContractStep,
    "service_offer": ServiceOfferMsg, "baseline": BaselineMsg, "delivery": DeliveryMsg,
}
SCHEMAS = {
    "contract": ("fpp.contract/1",), "close": ("fpp.service_close/1",), "dispatch": ("fpp.service_dispatch/1",),
    "settle": ("fpp.service_settle/1",), "service_offer": ("fpp.service_offer/1",), "baseline": ("fpp.baseline/1",),
    "delivery": ("fpp.delivery/1",),
}


# ---- platform -> operator, members ----------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AdvertMsg(_Out):
    schema_: Literal["fpp.advert/1"] = Field(default="fpp.advert/1", alias="schema")
    seq: int
    contract: dict[str, Any]


class AwardMsg(_Out):
    """A member's place in a coalition: it holds ``capacity_kw`` at its meter for the window."""

    schema_: Literal["fpp.award/1"] = Field(default="fpp.award/1", alias="schema")
    contract_id: str
    offer_id: str
    member: str
    capacity_kw: float
    counted_kw: float
    sensitivity: float
    direction: str
    window: dict[str, str]


class MemberDispatchMsg(_Out):
    """A member's part of the instruction: ``part_kw`` counted at the location, ``meter_kw`` at its meter
    (``part_kw / sensitivity``), per step of ``step_s`` seconds, on top of its declared baseline."""

    schema_: Literal["fpp.member_dispatch/1"] = Field(default="fpp.member_dispatch/1", alias="schema")
    contract_id: str
    member: str
    step_s: float
    part_kw: list[float]
    meter_kw: list[float]


class SelectionMsg(_Out):
    schema_: Literal["fpp.selection/1"] = Field(default="fpp.selection/1", alias="schema")
    request_msg_id: str
    contract_id: str
    status: str
    members: list[str]
    required_kw: float
    firm_kw: float
    shortfall_kw: float
    cost: float
    revenue: float
    pooled_firm_kw: float
    sum_individual_firm_kw: float
    offers: int
    rejected: list[dict[str, str]] = []


class MemberSettlementMsg(_Out):
    schema_: Literal["fpp.member_settlement/1"] = Field(default="fpp.member_settlement/1", alias="schema")
    contract_id: str
    member: str
    cost: float
    share: float
    utilisation_payment: float
    penalty: float
    payout: float
    required_kwh: float
    delivered_kwh: float
    sharing: str


class ContractSettlementMsg(_Out):
    schema_: Literal["fpp.contract_settlement/1"] = Field(default="fpp.contract_settlement/1", alias="schema")
    request_msg_id: str
    contract_id: str
    result: dict[str, Any]


# ---- topics and decoding --------------------------------------------------------------------------------


def advert_topic(seq: int) -> str:
    return f"{SERVICES}/advert/{seq}"


def parse_services_topic(topic: str) -> tuple[str, str] | None:
    """``(sender, kind)`` of a services topic the platform listens on, else None."""
    parts = topic.split("/")
    if len(parts) == 4 and topic.startswith(SERVICES + "/") and parts[3] in OPERATOR_KINDS:
        return OPERATOR_ID, parts[3]
    if len(parts) == 5 and parts[:3] == ["fpp", p.VERSION, "p"] and parts[4] in PROSUMER_KINDS:
        return parts[3], parts[4]
    return None


def decode(kind: str, payload: bytes, max_bytes: int = 4 * p.MAX_PAYLOAD_BYTES) -> _Msg:
    """Validate one inbound services payload strictly; raise :class:`~testbed.platform.protocol.ProtocolError`."""
    if len(payload) > max_bytes:
        raise p.ProtocolError("oversized", f"payload of {len(payload)} bytes exceeds {max_bytes}")
    model = INBOUND_MODELS.get(kind)
    if model is None:
        raise p.ProtocolError("unknown_kind", f"no services message kind {kind!r}")
    data = p.load_json_object(payload, max_bytes)  # the platform's one strict JSON reading
    msg_id = data.get("msg_id") if isinstance(data.get("msg_id"), str) else None
    if data.get("schema") not in SCHEMAS[kind]:
        raise p.ProtocolError("schema_version", f"schema {data.get('schema')!r} is not supported on this topic; "
                              f"expected {' or '.join(map(repr, SCHEMAS[kind]))}", msg_id)
    if kind == "settle" and data.get("schema") != "fpp.service_settle/1" or (
            kind == "close" and data.get("schema") != "fpp.service_close/1"):
        raise p.ProtocolError("schema_version", f"schema {data.get('schema')!r} does not fit kind {kind!r}", msg_id)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '(root)'}: {e['msg']}"
                             for e in exc.errors()[:10])
        raise p.ProtocolError("invalid", problems, msg_id) from None


def encode(msg: BaseModel) -> bytes:
    return msg.model_dump_json(by_alias=True).encode()
