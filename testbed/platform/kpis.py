"""Market KPIs of a run, from the ledger: traded energy, prices, bills against the retail tariff, and
green energy delivered with its provenance (interval, time, seller and buyer with their buses).

:func:`market_kpis` is pure (rows in, a JSON-ready dict out); :func:`kpis_from_ledger` reads the rows.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from itertools import groupby
from typing import Any

import msgspec

from testbed.domain.prosumer import Tariff
from testbed.platform.clearing import retail_bill
from testbed.platform.ledger import Ledger


def market_kpis(
    trades: Iterable[tuple],
    settlements: Iterable[tuple],
    provenance: Iterable[tuple],
    telemetry: Iterable[tuple[str, int, float, float]],
    intervals: Iterable[tuple[int, str]],
    tariff: Tariff | None,
) -> dict[str, Any]:
    """KPIs from ledger rows, each read once, in the ledger's order (a year's rows need not fit in memory).

    ``trades``: ``(interval, seq, seller, buyer, p_kw, e_kwh, price_per_kwh, energy_class)``;
    ``settlements``: ``(interval, prosumer, kind, p_trade_kw, e_kwh, amount)``, by interval;
    ``provenance``: ``(interval, seq, t_s, seller, seller_bus, buyer, buyer_bus, e_kwh)``;
    ``telemetry``: ``(prosumer, interval, e_export_kwh, e_import_kwh)``, by interval;
    ``intervals``: ``(interval, status)`` of each cleared interval.

    A prosumer's platform bill is its market payments plus its imbalance settlements; its retail bill is
    the same metered energy at the plain tariff (interval net metering). Both count only intervals with
    telemetry, so they cover the same energy. Amounts > 0 are paid by the prosumer. Each prosumer's sums run
    over its intervals in ascending order, whatever the order of prosumers within an interval, so the
    floating-point sums do not depend on arrival order.
    """
    e_kwh, value = array("d"), array("d")  # summed by sum() (compensated since Python 3.12), as before
    p_min = p_max = None
    for t in trades:
        e_kwh.append(t[5])
        value.append(t[5] * t[6])
        p_min = t[6] if p_min is None or t[6] < p_min else p_min
        p_max = t[6] if p_max is None or t[6] > p_max else p_max
    traded = sum(e_kwh)
    retail: dict[str, float] = {}
    platform_bill: dict[str, float] = defaultdict(float)
    for metered, rows in _by_interval(telemetry, settlements):
        for pid, e_exp, e_imp in metered:
            retail[pid] = retail.get(pid, 0.0) + (retail_bill(e_exp, e_imp, tariff) if tariff is not None else 0.0)
        pids = {pid for pid, _, _ in metered}
        for _k, pid, _kind, _p, _e, amount in rows:
            if pid in pids:
                platform_bill[pid] += amount
    bills: dict[str, dict[str, float]] = {}
    retail_total = platform_total = 0.0
    for pid in sorted(retail):
        b = bills[pid] = {"platform": platform_bill.get(pid, 0.0), "retail": retail[pid]}
        b["saving"] = b["retail"] - b["platform"]
        retail_total += b["retail"]
        platform_total += b["platform"]
    statuses: dict[str, int] = defaultdict(int)
    n_intervals = 0
    for _, status in intervals:
        statuses[status] += 1
        n_intervals += 1
    green = array("d")
    flows: dict[str, float] = {}
    for r in provenance:
        green.append(r[7])
        key = f"{r[4]} -> {r[6]}"
        flows[key] = flows.get(key, 0.0) + r[7]
    return {
        "intervals": n_intervals,
        "interval_status": dict(sorted(statuses.items())),
        "trades": len(e_kwh),
        "traded_kwh": traded,
        "price_per_kwh": {"volume_weighted": sum(value) / traded if traded > 0 else None, "min": p_min, "max": p_max},
        "bills": bills,
        "bill_platform_total": platform_total,
        "bill_retail_total": retail_total if tariff is not None else None,
        "green_kwh": sum(green),
        "green_flows_kwh": dict(sorted(flows.items())),
    }


def _by_interval(
    telemetry: Iterable[tuple[str, int, float, float]], settlements: Iterable[tuple]
) -> Iterator[tuple[list[tuple[str, float, float]], list[tuple]]]:
    """For each interval (ascending) that has telemetry or settlements: its meter readings
    ``(prosumer, e_export_kwh, e_import_kwh)`` and its settlement rows."""
    tel = groupby(telemetry, key=lambda r: r[1])
    sett = groupby(settlements, key=lambda r: r[0])
    t, s = next(tel, None), next(sett, None)
    last = None
    while t is not None or s is not None:
        k = min(x[0] for x in (t, s) if x is not None)
        if last is not None and k <= last:
            raise ValueError(f"ledger rows out of interval order: interval {k} after {last}")
        last = k
        metered: list[tuple[str, float, float]] = []
        rows: list[tuple] = []
        if t is not None and t[0] == k:
            metered = [(pid, e_exp, e_imp) for pid, _, e_exp, e_imp in t[1]]
            t = next(tel, None)
        if s is not None and s[0] == k:
            rows = list(s[1])
            s = next(sett, None)
        yield metered, rows


def provenance_record(row: tuple) -> dict[str, Any]:
    """A ``provenance`` row as the record ``green_provenance.csv`` writes."""
    return {
        "interval": row[0],
        "t_s": row[2],
        "seller": row[3],
        "seller_bus": row[4],
        "buyer": row[5],
        "buyer_bus": row[6],
        "e_kwh": row[7],
    }


class _Reading(msgspec.Struct):
    e_export_kwh: float
    e_import_kwh: float


class _Status(msgspec.Struct):
    status: str


_READING = msgspec.json.Decoder(_Reading)  # the fields the KPIs need, out of a stored payload or result
_STATUS = msgspec.json.Decoder(_Status)


def kpis_from_ledger(ledger: Ledger, tariff: Tariff | None) -> dict[str, Any]:
    """:func:`market_kpis` of a ledger, its rows streamed (a year-long run's ledger holds millions)."""
    telemetry = (
        (sender, k, r.e_export_kwh, r.e_import_kwh)
        for sender, k, payload in ledger.stream("telemetry")
        for r in [_READING.decode(payload)]
    )
    intervals = ((k, _STATUS.decode(res).status if res else "closed") for k, res in ledger.stream("interval_results"))
    return market_kpis(
        ledger.stream("trades"), ledger.stream("settlements"), ledger.stream("provenance"), telemetry, intervals, tariff
    )
