"""Market KPIs of a run, from the ledger: traded energy, prices, bills against the retail tariff, and
green energy delivered with its provenance (interval, time, seller and buyer with their buses).

:func:`market_kpis` is pure (rows in, a JSON-ready dict out); :func:`kpis_from_ledger` reads the rows.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from testbed.domain.prosumer import Tariff
from testbed.platform.clearing import retail_bill
from testbed.platform.ledger import Ledger


def market_kpis(
    trades: list[tuple],
    settlements: list[tuple],
    provenance: list[tuple],
    telemetry: list[tuple[str, int, float, float]],
    intervals: list[tuple[int, str]],
    tariff: Tariff | None,
) -> dict[str, Any]:
    """KPIs from ledger rows.

    ``trades``: ``(interval, seq, seller, buyer, p_kw, e_kwh, price_per_kwh, energy_class)``;
    ``settlements``: ``(interval, prosumer, kind, p_trade_kw, e_kwh, amount)``;
    ``provenance``: ``(interval, seq, t_s, seller, seller_bus, buyer, buyer_bus, e_kwh)``;
    ``telemetry``: ``(prosumer, interval, e_export_kwh, e_import_kwh)``;
    ``intervals``: ``(interval, status)`` of each cleared interval.

    A prosumer's platform bill is its market payments plus its imbalance settlements; its retail bill is
    the same metered energy at the plain tariff (interval net metering). Both count only intervals with
    telemetry, so they cover the same energy. Amounts > 0 are paid by the prosumer.
    """
    traded = sum(t[5] for t in trades)
    prices = [t[6] for t in trades]
    vw_price = sum(t[5] * t[6] for t in trades) / traded if traded > 0 else None
    metered = {(pid, k) for pid, k, _, _ in telemetry}
    platform_bill: dict[str, float] = defaultdict(float)
    for k, pid, _kind, _p, _e, amount in settlements:
        if (pid, k) in metered:
            platform_bill[pid] += amount
    bills: dict[str, dict[str, float]] = {}
    retail_total = platform_total = 0.0
    # sums in a fixed order (prosumer, interval): telemetry arrives in any order, floating-point sums must not
    for pid, _k, e_exp, e_imp in sorted(telemetry):
        b = bills.setdefault(pid, {"platform": 0.0, "retail": 0.0})
        if tariff is not None:
            b["retail"] += retail_bill(e_exp, e_imp, tariff)
    for pid, b in sorted(bills.items()):
        b["platform"] = platform_bill.get(pid, 0.0)
        b["saving"] = b["retail"] - b["platform"]
        retail_total += b["retail"]
        platform_total += b["platform"]
    statuses: dict[str, int] = defaultdict(int)
    for _, status in intervals:
        statuses[status] += 1
    return {
        "intervals": len(intervals),
        "interval_status": dict(sorted(statuses.items())),
        "trades": len(trades),
        "traded_kwh": traded,
        "price_per_kwh": {
            "volume_weighted": vw_price,
            "min": min(prices, default=None),
            "max": max(prices, default=None),
        },
        "bills": {pid: bills[pid] for pid in sorted(bills)},
        "bill_platform_total": platform_total,
        "bill_retail_total": retail_total if tariff is not None else None,
        "green_kwh": sum(r[7] for r in provenance),
        "green_provenance": [
            {
                "interval": r[0],
                "t_s": r[2],
                "seller": r[3],
                "seller_bus": r[4],
                "buyer": r[5],
                "buyer_bus": r[6],
                "e_kwh": r[7],
            }
            for r in provenance
        ],
    }


def kpis_from_ledger(ledger: Ledger, tariff: Tariff | None) -> dict[str, Any]:
    telemetry = [
        (m.sender, m.interval, float(m.payload["e_export_kwh"]), float(m.payload["e_import_kwh"]))
        for m in ledger.messages_of_kind("telemetry")
    ]
    intervals = [(row[0], json.loads(row[4])["status"] if row[4] else "closed") for row in ledger.intervals()]
    return market_kpis(
        ledger.trades(), ledger.settlements(), ledger.provenance(), telemetry, intervals, tariff
    )
