"""Mixed step rates in one mosaik world: fast simulators on the world's tick, slow ones every ``ticks`` ticks.

A world whose frequency, responders or devices step at 20 Hz beside a grid, fleet and market stepping every
second or every 15 minutes gets the fast step as its time resolution (one mosaik time unit is one tick).
Every slow simulator is wrapped in :class:`SlowStepped`, which translates between the world's ticks and the
simulator's own steps: the simulator keeps seeing ``time`` as its step index and ``time_resolution`` as its
own step length, exactly as in a world of its own rate, so none of them needs to know about the fast ones.

mosaik orders the two rates by their data dependencies: a slow simulator's output at its step ``k`` (tick
``k × ticks``) is what fast simulators see until the slow step ``k + 1``; a fast simulator's output reaches a
slow one (time-shifted) as its value at the last tick before the slow step. A fast simulator that wants the
slow one to see a mean over the slow step computes it itself (:mod:`simulators.response`).

This is an adapter (it only translates time); real-time pacing of the ticks is :mod:`simulators.pacing`.
"""

from __future__ import annotations

from typing import Any

import mosaik_api_v3


class SlowStepped(mosaik_api_v3.Simulator):
    """Wraps a simulator of class ``inner`` that steps every ``ticks`` ticks of the world, in its own steps.

    Every call but ``init`` and ``step`` goes straight to the wrapped simulator (extra methods included)."""

    def __init__(self, inner: type, ticks: int) -> None:
        if not isinstance(ticks, int) or ticks < 1:
            raise ValueError(f"ticks {ticks!r}: must be an integer >= 1")
        self._inner = inner()
        self._ticks = ticks
        super().__init__(self._inner.meta)

    def init(self, sid, time_resolution=1.0, **params):
        meta = self._inner.init(sid, time_resolution=time_resolution * self._ticks, **params)
        self.meta = meta
        return meta

    def create(self, num, model, **model_params):
        return self._inner.create(num, model, **model_params)

    def setup_done(self):
        self._inner.setup_done()

    def warm_up(self):
        warm_up = getattr(self._inner, "warm_up", None)
        if warm_up is not None:
            warm_up()

    def step(self, time, inputs, max_advance):
        if time % self._ticks:
            raise RuntimeError(f"a slow simulator was stepped at tick {time}, not on its own step "
                               f"(every {self._ticks} ticks)")
        own_advance = None if max_advance is None else max_advance // self._ticks
        nxt = self._inner.step(time // self._ticks, inputs, own_advance)
        return None if nxt is None else nxt * self._ticks

    def get_data(self, outputs):
        return self._inner.get_data(outputs)

    def finalize(self):
        self._inner.finalize()

    def __getattr__(self, name: str) -> Any:  # extra methods (e.g. the recorder's kpis())
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def ticks_per_step(resolution_s: float, tick_s: float) -> int:
    """How many ticks of ``tick_s`` make one step of ``resolution_s``; ValueError unless a whole number."""
    if not tick_s > 0:
        raise ValueError(f"tick {tick_s} s: must be > 0")
    n = resolution_s / tick_s
    k = round(n)
    if k < 1 or abs(n - k) > 1e-9 * max(1.0, n):
        raise ValueError(f"a step of {resolution_s:g} s is not a whole number of ticks of {tick_s:g} s")
    return int(k)
