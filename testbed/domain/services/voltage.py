"""IEEE 1547.1-2020 voltage-regulation test characteristics (Volt-VAR 1–3, Volt-Watt 1–3) and the minimum
required accuracies (MRA) that its pass/fail rules use. Pure.

Units: voltage in per unit of nominal; reactive power as a fraction of the rated apparent power S_rated
(> 0 injects, over-excited); active power as a fraction of the rated active power P_rated.

Sources (checked against Sandia's svp_1547.1 ``p1547.py``, which transcribes the standard's tables, and
OpenDER 2.2's Category B defaults):

- Volt-VAR characteristic 1 = IEEE 1547-2018 Table 8 Category B default: (0.92, +0.44), (0.98, 0), (1.02, 0),
  (1.08, −0.44), open-loop response time 5 s; characteristics 2 and 3 from IEEE 1547.1-2020 Table 26
  (Category B): their Q points are fractions of the DER's rated *reactive* power (Category B: 0.44·S_rated),
  so ±100 % / ±50 % of it are ±0.44 / ±0.22 of S_rated here; response times 1 s and 90 s.
- Volt-Watt (IEEE 1547.1-2020 Table 30 as in ``p1547.py``): characteristic 1 V1 1.06, V2 1.10, 10 s;
  characteristic 2 1.05, 1.10, 90 s; characteristic 3 1.09, 1.10, 0.5 s; P2 the lesser of 0.2·P_rated and
  P_min, 0 for a DER that can absorb (characteristic 1).
- MRA, IEEE 1547-2018 Table 3 (steady state): voltage ±1 % of nominal, active and reactive power ±5 % of
  S_rated, frequency 10 mHz, time 1 % of the measured duration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.domain.errors import UserError

#: IEEE 1547-2018 Table 3, steady-state minimum required accuracies (in the units of this module).
MRA_V_PU = 0.01
MRA_P = 0.05  # of S_rated
MRA_Q = 0.05  # of S_rated
MRA_F_HZ = 0.01
MRA_T = 0.01  # of the measured duration
CAT_B_VAR_RATED = 0.44  # Category B reactive capability, of S_rated (IEEE 1547-2018 §5.2)


@dataclass(frozen=True)
class Characteristic:
    """A piecewise-linear curve y(x), flat beyond its end points, with its open-loop response time ``tr_s``.

    ``quantity`` is ``"q"`` (Volt-VAR: y is Q / S_rated) or ``"p"`` (Volt-Watt: y is P / P_rated, x is V).
    """

    key: str
    name: str
    quantity: str
    points: tuple[tuple[float, float], ...]
    tr_s: float
    source: str

    def __call__(self, v_pu: np.ndarray | float) -> np.ndarray:
        xs = np.array([p[0] for p in self.points])
        ys = np.array([p[1] for p in self.points])
        return np.interp(np.asarray(v_pu, dtype=float), xs, ys)

    def span(self, v_lo: np.ndarray | float, v_hi: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Least and largest value of the curve over ``[v_lo, v_hi]`` (element-wise): the curve's value at the
        interval's ends and at every knee point inside it."""
        lo = np.asarray(v_lo, dtype=float)
        hi = np.asarray(v_hi, dtype=float)
        a, b = self(lo), self(hi)
        ymin, ymax = np.minimum(a, b), np.maximum(a, b)
        for x, y in self.points:
            inside = (lo <= x) & (x <= hi)
            ymin = np.where(inside, np.minimum(ymin, y), ymin)
            ymax = np.where(inside, np.maximum(ymax, y), ymax)
        return ymin, ymax

    @property
    def v_points(self) -> tuple[float, ...]:
        return tuple(p[0] for p in self.points)


_VV_SRC = "IEEE 1547.1-2020 §5.14.4 and Table 26 (Category B), as transcribed in Sandia svp_1547.1 p1547.py"
_VW_SRC = "IEEE 1547.1-2020 §5.14.6 (Volt-Watt) characteristics, as transcribed in Sandia svp_1547.1 p1547.py"
Q = CAT_B_VAR_RATED


def volt_watt(key: int, p2: float = 0.0) -> Characteristic:
    """Volt-Watt characteristic ``key`` (1–3) with ``p2`` the output at V2 [fraction of P_rated]: 0 for a
    storage DER that can absorb (characteristic 1), else the lesser of 0.2 and P_min/P_rated."""
    v1, tr = {1: (1.06, 10.0), 2: (1.05, 90.0), 3: (1.09, 0.5)}[key]
    return Characteristic(
        f"volt-watt-{key}", f"IEEE 1547.1 Volt-Watt characteristic {key}", "p", ((v1, 1.0), (1.10, p2)), tr, _VW_SRC
    )


CHARACTERISTICS: dict[str, Characteristic] = {
    "volt-var-1": Characteristic(
        "volt-var-1",
        "IEEE 1547.1 Volt-VAR characteristic 1 (Category B default)",
        "q",
        ((0.92, Q), (0.98, 0.0), (1.02, 0.0), (1.08, -Q)),
        5.0,
        "IEEE 1547-2018 Table 8 (Category B default); " + _VV_SRC,
    ),
    "volt-var-2": Characteristic(
        "volt-var-2",
        "IEEE 1547.1 Volt-VAR characteristic 2",
        "q",
        ((0.88, Q), (1.04, Q / 2), (1.07, Q / 2), (1.10, -Q)),
        1.0,
        _VV_SRC,
    ),
    "volt-var-3": Characteristic(
        "volt-var-3",
        "IEEE 1547.1 Volt-VAR characteristic 3",
        "q",
        ((0.90, Q), (0.93, -Q / 2), (0.96, -Q / 2), (1.10, -Q)),
        90.0,
        _VV_SRC,
    ),
    "volt-watt-1": volt_watt(1, 0.2),
    "volt-watt-2": volt_watt(2, 0.2),
    "volt-watt-3": volt_watt(3, 0.2),
}


def characteristic(key: str, where: str = "service") -> Characteristic:
    try:
        return CHARACTERISTICS[key]
    except KeyError:
        raise UserError(
            f"{where}: unknown IEEE 1547.1 characteristic {key!r}", [f"known: {', '.join(CHARACTERISTICS)}"]
        ) from None


def accuracy_band(
    curve: Characteristic, x_meas: np.ndarray | float, mra_x: float, mra_y: float
) -> tuple[np.ndarray, np.ndarray]:
    """IEEE 1547.1-2020 steady-state pass band for a measured input ``x_meas``:
    ``[min Y(x) over x_meas ± 1.5·MRA_x − 1.5·MRA_y, max Y(x) over x_meas ± 1.5·MRA_x + 1.5·MRA_y]``
    (for a decreasing curve this is ``[Y(x+1.5·MRA_x) − 1.5·MRA_y, Y(x−1.5·MRA_x) + 1.5·MRA_y]``)."""
    x = np.asarray(x_meas, dtype=float)
    ymin, ymax = curve.span(x - 1.5 * mra_x, x + 1.5 * mra_x)
    return ymin - 1.5 * mra_y, ymax + 1.5 * mra_y


def first_order(y0: float, y_final: float, t_s: np.ndarray | float, tr_s: float) -> np.ndarray:
    """Output of a first-order response that makes 90 % of its change at ``tr_s`` (IEEE 1547 open-loop
    response time): ``y0 + (y_final − y0)·(1 − 10^(−t/tr))``."""
    t = np.maximum(np.asarray(t_s, dtype=float), 0.0)
    return y0 + (y_final - y0) * (1.0 - np.power(10.0, -t / tr_s))
