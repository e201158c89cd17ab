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

from simulators.wrapper import Wrapper


class SlowStepped(Wrapper):
    """Wraps a simulator of class ``inner`` that steps every ``ticks`` ticks of the world, in its own steps
    (every other call passes through)."""

    def __init__(self, inner: type, ticks: int) -> None:
        if not isinstance(ticks, int) or ticks < 1:
            raise ValueError(f"ticks {ticks!r}: must be an integer >= 1")
        super().__init__(inner)
        self._ticks = ticks

    def init(self, sid, time_resolution=1.0, **params):
        return super().init(sid, time_resolution=time_resolution * self._ticks, **params)

    def step(self, time, inputs, max_advance):
        if time % self._ticks:
            raise RuntimeError(f"a slow simulator was stepped at tick {time}, not on its own step "
                               f"(every {self._ticks} ticks)")
        own_advance = None if max_advance is None else max_advance // self._ticks
        nxt = self._inner.step(time // self._ticks, inputs, own_advance)
        return None if nxt is None else nxt * self._ticks


def ticks_per_step(resolution_s: float, tick_s: float) -> int:
    """How many ticks of ``tick_s`` make one step of ``resolution_s``; ValueError unless a whole number."""
    if not tick_s > 0:
        raise ValueError(f"tick {tick_s} s: must be > 0")
    n = resolution_s / tick_s
    k = round(n)
    if k < 1 or abs(n - k) > 1e-9 * max(1.0, n):
        raise ValueError(f"a step of {resolution_s:g} s is not a whole number of ticks of {tick_s:g} s")
    return int(k)
