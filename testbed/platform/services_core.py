"""The platform's handling of grid-service contracts, independent of MQTT (the market's is :mod:`.core`).

One inbound message in, outbound messages out, as for orders: every message is validated strictly
(:mod:`.services_protocol`), checked against the sender's identity and the contract's state, made idempotent by
its id against the ledger, and stored before it is acknowledged; each step of a contract's life is one ledger
transaction (the request, the new state and its rows), so a platform killed at any point resumes from the
ledger and never awards or pays twice (a retried request gets the stored result again).

Life of a contract (its ``state`` in the ledger)::

    contract -> open --close--> awarded | unfilled;  awarded --dispatch--> dispatched --settle--> settled

Members offer while it is ``open``, declare their baseline while it is ``awarded`` and report their metered
power once it is ``dispatched``. The pure arithmetic is :mod:`testbed.domain.fpp`: ``select_coalition``,
``settle_members``, ``contract_game``, ``share``, ``stability`` and ``payouts``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

import numpy as np
from pydantic import ValidationError

from testbed.domain.errors import UserError
from testbed.domain.fpp import (
    Contract,
    ServiceOffer,
    contract_game,
    offer_problems,
    payouts,
    select_coalition,
    settle_members,
    share,
    stability,
)
from testbed.domain.fpp.contract import _cross_problems, _problems
from testbed.domain.fpp.games import MAX_TABLE_PLAYERS
from testbed.domain.fpp.settlement import response_kw
from testbed.domain.fpp.sharing import MAX_LP_PLAYERS, METHODS
from testbed.platform import protocol as p
from testbed.platform import services_protocol as sp
from testbed.platform.ledger import Ledger, StoredMessage

log = logging.getLogger(__name__)
SAMPLES_BEYOND_EXACT = 4000
"""Shapley is sampled with this many orders (seed 0) for coalitions too large for the exact value."""


class ServicesCore:
    def __init__(self, ledger: Ledger, prosumers: dict[str, tuple[str | None, str | None]], out_type: type) -> None:
        self.ledger = ledger
        self.prosumers = prosumers
        self._out = out_type  # core.Out (kept there so that both cores publish the same way)
        self.contracts: dict[str, dict[str, Any]] = {}
        for cid, seq, state, payload, selection, dispatch, settlement in ledger.contracts():
            self.contracts[cid] = {"seq": seq, "state": state, "contract": Contract.model_validate(payload),
                                   "selection": selection, "dispatch": dispatch, "settlement": settlement}

    # ---- entry point -----------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> list | None:
        """The replies to a message on a services topic; None when ``topic`` is not one."""
        where = sp.parse_services_topic(topic)
        if where is None:
            return None
        sender, kind = where
        operator = kind in sp.OPERATOR_KINDS  # the kinds are disjoint: a prosumer named "operator" stays one
        try:
            if not operator and sender not in self.prosumers:
                raise p.ProtocolError("unknown_prosumer", f"{sender!r} is not registered on this platform")
            msg = sp.decode(kind, payload)
            who = getattr(msg, "member", None) or getattr(msg, "prosumer", None)
            if not operator and who != sender:
                raise p.ProtocolError("identity", f"payload names {who!r}, the topic's sender is {sender!r}",
                                      msg.msg_id)
            seen = self.ledger.find_message(sender, msg.msg_id)
            digest = p.payload_hash(msg)
            if seen is not None:
                if seen.hash != digest or seen.kind != kind:
                    raise p.ProtocolError("duplicate_id", f"msg_id {msg.msg_id!r} was already used for a different "
                                          "message", msg.msg_id)
                return self._repeat(sender, kind, msg)
            try:
                return getattr(self, f"_{kind}")(sender, msg, digest)
            except p.ProtocolError:
                raise
            except Exception as exc:  # a bug must not stop the platform: refuse this message, keep serving
                log.exception("handling %s %s from %s failed", kind, msg.msg_id, sender)
                raise p.ProtocolError("internal", f"the platform failed on this message: {type(exc).__name__}: {exc}",
                                      msg.msg_id) from None
        except p.ProtocolError as exc:
            log.info("refused %s from %s: %s (msg_id=%s)", kind, sender, exc, exc.msg_id)
            err = p.ErrorMsg(msg_id=exc.msg_id, code=exc.code, detail=exc.detail)
            if operator:
                return [self._out(sp.OPERATOR_ERROR_TOPIC, p.encode(err))]
            return [self._out(p.prosumer_topic(sender, "error"), p.encode(err))] if p.PROSUMER_ID_RE.match(sender) \
                else []

    # ---- helpers ---------------------------------------------------------------------------------

    def _entry(self, contract_id: str, msg_id: str, *states: str) -> dict[str, Any]:
        entry = self.contracts.get(contract_id)
        if entry is None:
            raise p.ProtocolError("unknown_contract", f"no contract {contract_id!r}", msg_id)
        if states and entry["state"] not in states:
            raise p.ProtocolError("contract_state", f"contract {contract_id!r} is {entry['state']}, not "
                                  f"{' or '.join(states)}", msg_id)
        return entry

    def _stored(self, sender: str, kind: str, seq: int, msg: Any, digest: str) -> StoredMessage:
        return StoredMessage(sender, msg.msg_id, kind, seq, digest, msg.model_dump(mode="json", by_alias=True))

    def _ack(self, sender: str, msg_id: str, kind: str, seq: int, duplicate: bool = False) -> Any:
        topic = sp.OPERATOR_ACK_TOPIC if kind in sp.OPERATOR_KINDS else p.prosumer_topic(sender, "ack")
        return self._out(topic, p.encode(p.Ack(msg_id=msg_id, kind=kind, interval=seq, duplicate=duplicate)))

    def _awards(self, contract_id: str) -> dict[str, tuple]:
        return {r[1]: r for r in self.ledger.service_awards(contract_id)}

    def _latest(self, kind: str, seq: int) -> dict[str, dict]:
        """The last accepted message of ``kind`` per sender for the contract with sequence number ``seq``."""
        return {m.sender: m.payload for m in self.ledger.messages(kind, seq)}

    def _repeat(self, sender: str, kind: str, msg: Any) -> list:
        """A retried message: acknowledged again; a retried close or settle gets its stored result again."""
        cid = getattr(msg, "contract_id", None) or (msg.contract.get("id") if kind == "contract" else None)
        entry = self.contracts.get(cid, {"seq": -1})
        out = [self._ack(sender, msg.msg_id, kind, entry["seq"], duplicate=True)]
        if kind == "close" and entry.get("selection"):
            out = self._selection_outs(cid, entry) + out
        if kind == "settle" and entry.get("settlement"):
            out = self._settlement_outs(cid, entry) + out
        return out

    # ---- operator: advertise, close, dispatch, settle --------------------------------------------

    def _contract(self, sender: str, msg: sp.ContractMsg, digest: str) -> list:
        data = msg.contract
        try:
            contract = Contract.model_validate_json(json.dumps(data), strict=True)
            problems = _cross_problems(data, "contract")
        except ValidationError as exc:
            contract, problems = None, _problems(exc, "contract") + _cross_problems(data, "contract")
        cid = data.get("id")
        if isinstance(cid, str) and not re.match(p.MSG_ID_RE, cid):
            problems.append(f"contract.id: {cid!r} must match {p.MSG_ID_RE}")
        if problems or contract is None:
            raise p.ProtocolError("invalid_contract", "; ".join(problems), msg.msg_id)
        if contract.id in self.contracts:
            raise p.ProtocolError("duplicate_contract", f"contract {contract.id!r} was already advertised", msg.msg_id)
        seq = len(self.contracts)
        stored = contract.model_dump(mode="json")
        self.ledger.add_contract(self._stored(sender, "contract", seq, msg, digest), contract.id, seq, stored)
        self.contracts[contract.id] = {"seq": seq, "state": "open", "contract": contract, "selection": None,
                                       "dispatch": None, "settlement": None}
        log.info("contract %s advertised (%s)", contract.id, contract.origin or contract.buyer)
        advert = sp.AdvertMsg(seq=seq, contract=stored)
        return [self._out(sp.advert_topic(seq), sp.encode(advert), True),
                self._ack(sender, msg.msg_id, "contract", seq)]

    def _offers(self, entry: dict[str, Any]) -> list[ServiceOffer]:
        out = []
        for m in self.ledger.messages("service_offer", entry["seq"]):
            data = sp.ServiceOfferMsg.model_validate(m.payload).offer_data()
            out.append(ServiceOffer.model_validate_json(json.dumps(data)))
        return sorted(out, key=lambda o: o.id)  # the selection must not depend on the order offers arrived in

    def _close(self, sender: str, msg: sp.ContractStep, digest: str) -> list:
        entry = self._entry(msg.contract_id, msg.msg_id, "open")
        contract: Contract = entry["contract"]
        offers = self._offers(entry)
        if offers:
            sel = select_coalition(contract, offers)
            chosen = {o.id: o for o in offers if o.id in sel.members}
            filled = sel.status == "filled"
            selection = {
                "status": sel.status, "members": sorted(o.member for o in chosen.values()),
                "required_kw": sel.required_kw, "firm_kw": sel.firm_kw, "shortfall_kw": sel.shortfall_kw,
                "mean_kw": sel.mean_kw, "sd_kw": sel.sd_kw, "cost": sel.cost, "revenue": sel.revenue,
                "pooled_firm_kw": sel.pooling.pooled_firm_kw,
                "sum_individual_firm_kw": sel.pooling.sum_individual_firm_kw, "offers": len(offers),
                "rejected": [{"offer_id": r.offer_id, "reason": r.reason} for r in sel.rejected],
            }
            awards = [(o.member, o.id, o.capacity_kw, contract.sensitivity_at(o.bus) * o.capacity_kw,
                       contract.sensitivity_at(o.bus), o.cost(contract)) for o in chosen.values()] if filled else []
        else:
            selection = {"status": "unfilled", "members": [], "required_kw": contract.capacity_kw, "firm_kw": 0.0,
                         "shortfall_kw": contract.capacity_kw, "mean_kw": 0.0, "sd_kw": 0.0, "cost": 0.0,
                         "revenue": contract.availability_revenue, "pooled_firm_kw": 0.0,
                         "sum_individual_firm_kw": 0.0, "offers": 0, "rejected": []}
            awards = []
        selection["request_msg_id"] = msg.msg_id
        state = "awarded" if awards else "unfilled"
        self.ledger.record_contract_step(self._stored(sender, "close", entry["seq"], msg, digest), contract.id, state,
                                         "selection", selection, awards=awards)
        entry.update(state=state, selection=selection)
        log.info("contract %s %s: %d members, firm %.2f of %.2f kW", contract.id, state, len(awards),
                 selection["firm_kw"], contract.capacity_kw)
        return self._selection_outs(contract.id, entry) + [self._ack(sender, msg.msg_id, "close", entry["seq"])]

    def _selection_outs(self, cid: str, entry: dict[str, Any]) -> list:
        s, c = entry["selection"], entry["contract"]
        window = {"start": c.window.start.isoformat(), "end": c.window.end.isoformat()}
        out = [self._out(p.prosumer_topic(m, "award"), sp.encode(sp.AwardMsg(
            contract_id=cid, offer_id=oid, member=m, capacity_kw=cap, counted_kw=counted, sensitivity=sens,
            direction=c.direction, window=window)))
            for _, m, oid, cap, counted, sens, _ in self.ledger.service_awards(cid)]
        fields = {k: s[k] for k in ("status", "members", "required_kw", "firm_kw", "shortfall_kw", "cost", "revenue",
                                    "pooled_firm_kw", "sum_individual_firm_kw", "offers", "rejected")}
        fields = {k: (0.0 if isinstance(v, float) and math.isnan(v) else v) for k, v in fields.items()}
        out.append(self._out(sp.RESULT_TOPIC, sp.encode(sp.SelectionMsg(
            request_msg_id=s["request_msg_id"], contract_id=cid, **fields))))
        return out

    def _window_steps(self, contract: Contract, step_s: float, n: int, what: str, msg_id: str) -> None:
        steps = contract.duration_h * 3600.0 / step_s
        if abs(steps - round(steps)) > 1e-9 or round(steps) != n:
            raise p.ProtocolError("invalid", f"{what}: the window of {contract.duration_h:g} h needs one value per "
                                  f"{step_s:g} s step ({steps:g}), got {n}", msg_id)

    def _dispatch(self, sender: str, msg: sp.DispatchMsg, digest: str) -> list:
        entry = self._entry(msg.contract_id, msg.msg_id, "awarded")
        contract: Contract = entry["contract"]
        self._window_steps(contract, msg.step_s, len(msg.required_kw), "required_kw", msg.msg_id)
        if contract.direction != "both" and min(msg.required_kw) < 0:
            raise p.ProtocolError("invalid", f"required_kw: a contract {contract.direction} is instructed with "
                                  "values >= 0", msg.msg_id)
        dispatch = {"step_s": msg.step_s, "required_kw": list(msg.required_kw)}
        self.ledger.record_contract_step(self._stored(sender, "dispatch", entry["seq"], msg, digest), contract.id,
                                         "dispatched", "dispatch", dispatch)
        entry.update(state="dispatched", dispatch=dispatch)
        awards = self._awards(contract.id)
        total = sum(r[4] for r in awards.values())
        req = np.asarray(msg.required_kw)
        out = []
        for m, (_, _, _, _, counted, sens, _) in awards.items():
            part = req * counted / total
            out.append(self._out(p.prosumer_topic(m, "service_dispatch"), sp.encode(sp.MemberDispatchMsg(
                contract_id=contract.id, member=m, step_s=msg.step_s, part_kw=part.tolist(),
                meter_kw=(part / sens).tolist()))))
        return out + [self._ack(sender, msg.msg_id, "dispatch", entry["seq"])]

    def _settle(self, sender: str, msg: sp.ContractStep, digest: str) -> list:
        entry = self._entry(msg.contract_id, msg.msg_id, "dispatched")
        contract: Contract = entry["contract"]
        seq, dispatch = entry["seq"], entry["dispatch"]
        awards = self._awards(contract.id)
        baselines = self._latest("baseline", seq)
        deliveries = self._latest("delivery", seq)
        step_s = dispatch["step_s"]
        n = len(dispatch["required_kw"])
        responses, notes = {}, {}
        for m in awards:
            if m not in baselines or m not in deliveries:
                responses[m] = np.zeros(n)
                notes[m] = "no baseline declared" if m not in baselines else "no delivery reported"
            else:
                responses[m] = response_kw(np.asarray(deliveries[m]["p_meter_kw"]), baselines[m]["p_baseline_kw"],
                                           contract.direction)
        try:
            coalition, parts = settle_members(contract, {m: r[4] for m, r in awards.items()},
                                              {m: r[5] for m, r in awards.items()}, np.asarray(dispatch["required_kw"]),
                                              responses, step_s)
        except UserError as exc:
            raise p.ProtocolError("invalid", "; ".join([str(exc), *exc.problems]), msg.msg_id) from None
        offers = {o.id: o for o in self._offers(entry)}
        members = sorted(awards)
        game = contract_game(contract, [offers[awards[m][2]] for m in members], players=members)
        allocations, stab = {}, {}
        for method in METHODS:
            if method in ("nucleolus", "least-core") and game.n > MAX_LP_PLAYERS:
                continue
            samples = SAMPLES_BEYOND_EXACT if method == "shapley" and game.n > MAX_TABLE_PLAYERS else None
            a = share(game, method, samples=samples, seed=0)
            allocations[method] = a.as_dict()
            st = stability(game, a.shares)
            stab[method] = {"in_core": None if st.in_core is None else bool(st.in_core),
                            "individually_rational": bool(st.individually_rational),
                            "max_excess": None if st.max_excess is None else float(st.max_excess)}
        chosen = msg.sharing if msg.sharing in allocations else "shapley"
        costs = {m: awards[m][6] for m in members}
        pay = payouts(costs, allocations[chosen], parts)
        rows, per_member = [], {}
        for m in members:
            d = parts[m]
            shares = {meth: alloc[m] for meth, alloc in allocations.items()}
            rows.append((m, costs[m], allocations[chosen][m], d.utilisation_payment, d.penalty, pay[m],
                         d.required_kwh, d.delivered_kwh, shares))
            per_member[m] = {"cost": costs[m], "share": allocations[chosen][m], "shares": shares,
                             "utilisation_payment": d.utilisation_payment, "penalty": d.penalty, "payout": pay[m],
                             "gain": pay[m] - costs[m], "required_kwh": d.required_kwh,
                             "delivered_kwh": d.delivered_kwh, "performance_factor": d.performance_factor,
                             "note": notes.get(m, "")}
        result = {
            "request_msg_id": msg.msg_id, "sharing": chosen, "availability_payment": coalition.availability_payment,
            "utilisation_payment": coalition.utilisation_payment, "penalty": coalition.penalty,
            "total": coalition.total, "required_kwh": coalition.required_kwh, "delivered_kwh": coalition.delivered_kwh,
            "performance_factor": coalition.performance_factor, "surplus": game.grand_value, "members": per_member,
            "stability": stab,
        }
        self.ledger.record_contract_step(self._stored(sender, "settle", seq, msg, digest), contract.id, "settled",
                                         "settlement", result, settlements=rows)
        entry.update(state="settled", settlement=result)
        log.info("contract %s settled: pf %.3f, total %.2f %s", contract.id, coalition.performance_factor,
                 coalition.total, contract.currency)
        return self._settlement_outs(contract.id, entry) + [self._ack(sender, msg.msg_id, "settle", seq)]

    def _settlement_outs(self, cid: str, entry: dict[str, Any]) -> list:
        r = entry["settlement"]
        out = [self._out(p.prosumer_topic(m, "service_settlement"), sp.encode(sp.MemberSettlementMsg(
            contract_id=cid, member=m, cost=v["cost"], share=v["share"], utilisation_payment=v["utilisation_payment"],
            penalty=v["penalty"], payout=v["payout"], required_kwh=v["required_kwh"], delivered_kwh=v["delivered_kwh"],
            sharing=r["sharing"]))) for m, v in r["members"].items()]
        out.append(self._out(sp.RESULT_TOPIC, sp.encode(sp.ContractSettlementMsg(
            request_msg_id=r["request_msg_id"], contract_id=cid, result=r))))
        return out

    # ---- members: offer, baseline, delivery ------------------------------------------------------

    def _service_offer(self, sender: str, msg: sp.ServiceOfferMsg, digest: str) -> list:
        entry = self._entry(msg.contract_id, msg.msg_id)
        if entry["state"] != "open":
            raise p.ProtocolError("closed", f"contract {msg.contract_id!r} takes no more offers ({entry['state']})",
                                  msg.msg_id)
        try:
            offer = ServiceOffer.model_validate_json(json.dumps(msg.offer_data()))
        except ValidationError as exc:
            raise p.ProtocolError("invalid_offer", "; ".join(_problems(exc, "")), msg.msg_id) from None
        problems = offer_problems(offer, {msg.contract_id: entry["contract"]}, sender)
        registered = self.prosumers[sender][0]
        if registered is not None and offer.bus != registered:
            problems.append(f"bus: {offer.bus!r} is not the member's registered bus {registered!r}")
        if any(m.sender == sender for m in self.ledger.messages("service_offer", entry["seq"])):
            problems.append(f"member {sender!r} already offered for contract {msg.contract_id!r}")
        if problems:
            raise p.ProtocolError("invalid_offer", "; ".join(problems), msg.msg_id)
        self.ledger.record_message(self._stored(sender, "service_offer", entry["seq"], msg, digest))
        return [self._ack(sender, msg.msg_id, "service_offer", entry["seq"])]

    def _member(self, sender: str, contract_id: str, msg_id: str, *states: str) -> dict[str, Any]:
        entry = self._entry(contract_id, msg_id)
        if sender not in self._awards(contract_id):
            raise p.ProtocolError("not_awarded", f"{sender!r} is not in the coalition of {contract_id!r}", msg_id)
        if entry["state"] not in states:
            raise p.ProtocolError("contract_state", f"contract {contract_id!r} is {entry['state']}, not "
                                  f"{' or '.join(states)}", msg_id)
        return entry

    def _baseline(self, sender: str, msg: sp.BaselineMsg, digest: str) -> list:
        entry = self._member(sender, msg.contract_id, msg.msg_id, "awarded")
        if sender in self._latest("baseline", entry["seq"]):
            raise p.ProtocolError("baseline_declared", f"{sender!r} already declared its baseline", msg.msg_id)
        self.ledger.record_message(self._stored(sender, "baseline", entry["seq"], msg, digest))
        return [self._ack(sender, msg.msg_id, "baseline", entry["seq"])]

    def _delivery(self, sender: str, msg: sp.DeliveryMsg, digest: str) -> list:
        entry = self._member(sender, msg.contract_id, msg.msg_id, "dispatched")
        if msg.step_s != entry["dispatch"]["step_s"]:
            raise p.ProtocolError("invalid", f"step_s: {msg.step_s:g} differs from the dispatch's "
                                  f"{entry['dispatch']['step_s']:g}", msg.msg_id)
        self._window_steps(entry["contract"], msg.step_s, len(msg.p_meter_kw), "p_meter_kw", msg.msg_id)
        if sender in self._latest("delivery", entry["seq"]):
            raise p.ProtocolError("delivery_reported", f"{sender!r} already reported its delivery", msg.msg_id)
        self.ledger.record_message(self._stored(sender, "delivery", entry["seq"], msg, digest))
        return [self._ack(sender, msg.msg_id, "delivery", entry["seq"])]
