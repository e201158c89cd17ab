"""The ledger's rows of grid-service contracts (:mod:`testbed.platform.services_core`): a part of
:class:`~testbed.platform.ledger.Ledger`, kept apart so that each file stays one subject."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from testbed.platform.ledger import StoredMessage


class ServiceRows:
    """Contracts, awards and member settlements; uses the :class:`~testbed.platform.ledger.Ledger`'s plumbing."""

    _rows: Any
    _sql: Any
    _tx: Any
    _insert_message: Any

    def contracts(self) -> list[tuple[str, int, str, dict, dict | None, dict | None, dict | None]]:
        """``(id, seq, state, contract, selection, dispatch, settlement)`` by sequence number."""
        rows = self._rows("SELECT id, seq, state, payload, selection, dispatch, settlement FROM {p}contracts "
                          "ORDER BY seq")
        return [(r[0], r[1], r[2], *(json.loads(x) if x else None for x in r[3:])) for r in rows]

    def add_contract(self, m: StoredMessage, contract_id: str, seq: int, contract: dict) -> None:
        """Store an advertised contract with the message that advertised it, in one transaction."""
        with self._tx() as cur:
            self._insert_message(cur, m)
            cur.execute(self._sql("INSERT INTO {p}contracts (id, seq, state, payload) VALUES (?, ?, 'open', ?)"),
                        (contract_id, seq, json.dumps(contract)))

    def record_contract_step(self, m: StoredMessage, contract_id: str, state: str, column: str, value: dict,
                             awards: list[tuple] = (), settlements: list[tuple] = ()) -> None:
        """Move a contract to ``state`` with its selection, dispatch or settlement (``column``), the request
        message, the awards ``(member, offer_id, capacity_kw, counted_kw, sensitivity, cost)`` and the member
        settlements ``(member, cost, share, utilisation, penalty, payout, required_kwh, delivered_kwh, shares)``
        in one transaction."""
        if column not in ("selection", "dispatch", "settlement"):
            raise ValueError(f"unknown contract column {column!r}")
        with self._tx() as cur:
            self._insert_message(cur, m)
            cur.execute(self._sql(f"UPDATE {{p}}contracts SET state = ?, {column} = ? WHERE id = ?"),
                        (state, json.dumps(value), contract_id))
            for row in awards:
                cur.execute(self._sql("INSERT INTO {p}service_awards (contract_id, member, offer_id, capacity_kw, "
                                      "counted_kw, sensitivity, cost) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                            (contract_id, *row))
            for row in settlements:
                cur.execute(self._sql("INSERT INTO {p}service_settlements (contract_id, member, cost, share, "
                                      "utilisation, penalty, payout, required_kwh, delivered_kwh, shares) "
                                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                            (contract_id, *row[:-1], json.dumps(row[-1])))

    def service_awards(self, contract_id: str | None = None) -> list[tuple]:
        """``(contract_id, member, offer_id, capacity_kw, counted_kw, sensitivity, cost)``."""
        where, args = ("WHERE contract_id = ? ", (contract_id,)) if contract_id is not None else ("", ())
        return self._rows("SELECT contract_id, member, offer_id, capacity_kw, counted_kw, sensitivity, cost "
                          f"FROM {{p}}service_awards {where}ORDER BY contract_id, member", args)

    def service_settlements(self) -> list[tuple]:
        """``(contract_id, member, cost, share, utilisation, penalty, payout, required_kwh, delivered_kwh,
        shares)`` with ``shares`` the member's share under every rule."""
        rows = self._rows("SELECT contract_id, member, cost, share, utilisation, penalty, payout, required_kwh, "
                          "delivered_kwh, shares FROM {p}service_settlements ORDER BY contract_id, member")
        return [(*r[:-1], json.loads(r[-1])) for r in rows]
