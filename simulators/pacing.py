"""Real-time pacing of a mosaik world: every simulator's step starts at its wall-clock time, measured.

Why not mosaik's own ``rt_factor``: in mosaik 3.7 a waiting simulator only learns that wall time has passed
when another simulator finishes a step or when its wait times out after a whole step length, and the step it
may take is ``ceil(elapsed / step)``: a step can start up to one step early or up to one step late, and each
late step prints a ``UserWarning``. Measured on the lab example of docs/hil.md (1 s steps): median 0.41 s
late, p99 0.98 s. So a real-time run is stepped as fast as possible by mosaik and paced here instead:

- each simulator of the world is wrapped in :class:`Paced` (``WorldBuilder.start`` does it when the run is
  real-time); the wrapper's ``step(t)`` sleeps until the shared :class:`WallClock` says step ``t`` is due,
  then lets the simulator step. mosaik orders the simulators by their data dependencies, so the first one
  to reach step ``t`` waits and the others follow at once;
- the clock's time zero is when the last simulator has been set up (``setup_done``) and warmed up (its
  optional ``warm_up()``: the grid solves one power flow there, so pandapower's kernels are compiled before
  the clock starts): a warm start. The heap built by then is frozen (``gc.freeze``), so the collector's full
  passes during the run stay short. The first step is late by what mosaik does between that and stepping;
- the clock records, per step time, how late the first simulator that reached it was; these are the run's
  step lateness figures (``kpis.json``, section ``real_time``);
- a lateness budget (``max_lateness_s``) ends the run with :class:`LatenessExceeded` (a fault, exit 3) at
  the first step that starts later than the budget.

This is an adapter: it reads and sleeps on the wall clock. The statistics are the pure
:mod:`testbed.domain.lateness`.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

from simulators.wrapper import Wrapper
from testbed.domain.errors import Fault
from testbed.domain.lateness import LatenessStats, stats_from_lateness

#: Sleep until this long before a deadline, then spin: ``time.sleep`` overshoots by 0.05–0.1 ms on Linux,
#: but a loaded machine can wake a sleeper a few ms late; the last stretch is spent polling the clock.
SPIN_S = 0.002


class LatenessExceeded(Fault):
    """A step of a real-time run started later than the run's lateness budget allows."""


@dataclass
class WallClock:
    """The wall-clock schedule of one real-time run: step ``t`` is due at ``t0 + t × seconds_per_step``.

    ``t0`` is set by :meth:`ready` (each simulator calls it when set up; the last call before the first step
    wins), or else by the first :meth:`wait_until`. ``max_lateness_s`` (None: no budget) makes a step later
    than it raise :class:`LatenessExceeded`.
    """

    seconds_per_step: float
    max_lateness_s: float | None = None
    created_at: float = field(default_factory=time.perf_counter)
    t0: float | None = None
    #: (step time, lateness [s]) of the first simulator that reached each step time, in order.
    lateness: list[tuple[int, float]] = field(default_factory=list)
    #: Durations [s] of the garbage collector's full passes (generation 2) after time zero: a late step that
    #: coincides with one was held up by the collector, not by the machine or a simulator.
    gc_full_s: list[float] = field(default_factory=list)
    _last_time: int = -1
    _gc_started: float | None = None

    def __post_init__(self) -> None:
        if not self.seconds_per_step > 0:
            raise ValueError(f"seconds_per_step {self.seconds_per_step}: must be > 0")
        if self.max_lateness_s is not None and not self.max_lateness_s > 0:
            raise ValueError(f"max_lateness_s {self.max_lateness_s}: must be > 0")

    @property
    def warmup_s(self) -> float | None:
        """Seconds from the clock's creation (the world being built) to time zero, or None before it."""
        return None if self.t0 is None else self.t0 - self.created_at

    def due(self, t: int) -> float:
        """The perf_counter time at which step ``t`` is due (needs ``t0``)."""
        return self.t0 + t * self.seconds_per_step

    def ready(self) -> None:
        """A simulator is set up and warmed up: time zero is now, unless a step has already started.

        The heap built so far (grid, profiles, models, libraries) is collected once and frozen first
        (``gc.freeze``): the collector's full passes during the run then scan only what the run allocates.
        Measured on ``scenarios/frequency-response.yaml``: a full pass over the unfrozen heap takes 0.1–0.3 s,
        which made the 20 Hz ticks after it miss their deadlines."""
        if not self.lateness:
            gc.collect()
            gc.freeze()
            if self._on_gc not in gc.callbacks:
                gc.callbacks.append(self._on_gc)
            self.t0 = time.perf_counter()

    def _on_gc(self, phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            self.gc_full_s.append(time.perf_counter() - self._gc_started)
            self._gc_started = None

    def close(self) -> None:
        """Stop watching the garbage collector (the run is over)."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def wait_until(self, t: int) -> None:
        """Block until step ``t`` is due; record its lateness if ``t`` is a new step time."""
        now = time.perf_counter()
        if self.t0 is None:
            self.t0 = now - t * self.seconds_per_step
        if t <= self._last_time:
            return  # a later simulator of the same step time (or a same-time loop): not paced again
        deadline = self.due(t)
        if deadline - now > SPIN_S:
            time.sleep(deadline - now - SPIN_S)
        while (now := time.perf_counter()) < deadline:
            pass
        late = now - deadline
        self._last_time = t
        self.lateness.append((t, late))
        if self.max_lateness_s is not None and late > self.max_lateness_s:
            raise LatenessExceeded(
                f"step {t} started {late * 1000:.3g} ms late, past the run's lateness budget of "
                f"{self.max_lateness_s * 1000:.3g} ms; the run stopped there and kept what it recorded"
            )

    def stats(self, every: int = 1) -> LatenessStats:
        """p50/p99/max lateness and missed deadlines (a step at least one step length late), of the step times
        that are multiples of ``every`` (the slow steps of a world with mixed rates; 1: all)."""
        return stats_from_lateness([late for t, late in self.lateness if t % every == 0], self.seconds_per_step)

    def kpis(self, every: int = 1) -> dict[str, Any]:
        """The ``real_time`` section of ``kpis.json`` (milliseconds); ``every`` as for :meth:`stats`."""
        st = self.stats(every)
        last = next((late for t, late in reversed(self.lateness) if t % every == 0), 0.0)
        return {
            "warmup_s": round(self.warmup_s or 0.0, 3),
            "steps": st.ticks,
            "step_s": self.seconds_per_step * every,
            "lateness_p50_ms": round(st.p50_s * 1000, 3),
            "lateness_p99_ms": round(st.p99_s * 1000, 3),
            "lateness_max_ms": round(st.max_s * 1000, 3),
            "lateness_last_ms": round(max(last, 0.0) * 1000, 3),
            "missed_deadlines": st.missed,
            "max_lateness_ms": None if self.max_lateness_s is None else self.max_lateness_s * 1000,
            "gc_full_passes": len(self.gc_full_s),
            "gc_full_max_ms": round(max(self.gc_full_s, default=0.0) * 1000, 3),
        }


class Paced(Wrapper):
    """Wraps a mosaik simulator of class ``inner`` so that each of its steps starts at its wall-clock time.

    Every other call passes through to the wrapped simulator (extra methods included); ``setup_done`` also
    calls the simulator's ``warm_up()`` when it has one, then tells the clock this simulator is ready.
    """

    def __init__(self, inner: type, clock: WallClock) -> None:
        super().__init__(inner)
        self._clock = clock

    def setup_done(self):
        super().setup_done()
        self.warm_up()
        self._clock.ready()

    def step(self, time, inputs, max_advance):
        self._clock.wait_until(time)
        return self._inner.step(time, inputs, max_advance)
