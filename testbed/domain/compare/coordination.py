"""What coordination costs (pure): messages exchanged and private parameters revealed to an operator, counted
from what each strategy actually sends (the paper's privacy argument, as numbers).

A *private parameter* is one number about a home that leaves it: a forecast value, a device rating, an
order's quantity or price, a metered energy. Ids, timestamps and message kinds are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from testbed.domain.compare.homes import BATTERY_FIELDS, Homes

#: The EV fields an operator needs to schedule a car (EVFleet's arguments, one number each).
EV_FIELDS = ("capacity_kwh", "charge_kw", "charge_efficiency", "trip_kwh", "depart_h", "arrive_h", "initial_soc")


def _summary(messages: int, per_home: np.ndarray) -> dict[str, float | int]:
    return {
        "messages": int(messages),
        "private_parameters_total": int(per_home.sum()),
        "private_parameters_per_home_mean": float(per_home.mean()) if per_home.size else 0.0,
        "private_parameters_per_home_max": int(per_home.max()) if per_home.size else 0,
    }


def no_coordination(n_homes: int) -> dict[str, float | int]:
    """``retail``: nothing is sent."""
    return _summary(0, np.zeros(n_homes, dtype=int))


def tariff_signal(n_homes: int) -> dict[str, float | int]:
    """``tou``: one tariff delivered to every home; homes reveal nothing."""
    return _summary(n_homes, np.zeros(n_homes, dtype=int))


def central_operator(h: Homes) -> dict[str, float | int]:
    """``central``: every home sends its load and PV forecast for every step and its devices' parameters (one
    message), and every home with a device receives its schedule (one message)."""
    per_home = 2 * h.n_steps + len(BATTERY_FIELDS) * h.has_battery + len(EV_FIELDS) * h.has_ev
    messages = h.n + int(np.sum(h.has_battery | h.has_ev))
    return _summary(messages, per_home.astype(int))


def market_messages(
    inbound: Iterable[tuple[str, Mapping]], homes: list[str], outbound: int
) -> dict[str, float | int]:
    """``p2p``: the messages the platform's ledger holds (``(sender, payload)``) plus ``outbound`` messages sent
    to homes (clearing results); a home reveals every number in the payloads it sent."""
    index = {pid: i for i, pid in enumerate(homes)}
    per_home = np.zeros(len(homes), dtype=int)
    count = 0
    for sender, payload in inbound:
        count += 1
        if sender in index:
            per_home[index[sender]] += sum(
                1 for k, v in payload.items()
                if k not in ("schema", "msg_id", "prosumer", "interval") and isinstance(v, int | float)
                and not isinstance(v, bool)
            )
    return _summary(count + outbound, per_home)
