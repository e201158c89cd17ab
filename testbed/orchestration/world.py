"""How a run is composed: each :class:`Part` the scenario enables adds itself to the mosaik world through one
:class:`WorldBuilder`, which the runner passes in.

The runner chooses the parts explicitly (:func:`testbed.orchestration.runner.parts_for`): the grid and the
fleet always, the market when the scenario has ``market:``, hardware in the loop when a prosumer has a
``hil:`` device. A part:

1. ``build(builder)``: starts its simulators with :meth:`WorldBuilder.start`, connects them to what earlier
   parts provided (:meth:`WorldBuilder.entity`, e.g. ``"grid"``, ``"fleet"``), provides its own entities to
   later parts (:meth:`WorldBuilder.provide`) and names what the recorder records (:meth:`WorldBuilder.record`);
2. after the run, ``kpis(builder)`` returns its section of ``kpis.json`` (``{}`` for none) and
   ``criteria(kpis)`` its criteria of the run's verdict;
3. ``close()`` releases what it holds (a platform process), whether the run succeeded or not.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mosaik
from mosaik.starters import PythonStarter

from simulators.pacing import Paced, WallClock
from simulators.rates import SlowStepped
from testbed.domain.verdict import Criterion
from testbed.orchestration.plan import RunPlan


@dataclass
class WorldBuilder:
    """What a part sees while the world is built: the world, the plan, where the run writes, and what earlier
    parts provided."""

    world: mosaik.World
    plan: RunPlan
    run_dir: Path
    real_time: bool = False
    #: The wall clock that paces every simulator of a real-time run (None: as fast as possible).
    clock: WallClock | None = None
    #: World ticks per step of ``time.resolution_s``: 1, unless fast simulators (``frequency_response``) make
    #: the world's tick shorter than the scenario's step (:mod:`simulators.rates`).
    ticks_per_step: int = 1
    #: The grid's element order (``bus_ids``, ``line_ids``, ``trafo_ids``), provided by the grid part.
    network: dict[str, Any] = field(default_factory=dict)
    #: The fleet's prosumer ids in the order of its array outputs, provided by the fleet part.
    prosumer_ids: tuple[str, ...] = ()
    _entities: dict[str, Any] = field(default_factory=dict)
    #: What the recorder records: (entity, attributes), and the element ids of array attributes.
    recorded: list[tuple[Any, tuple[str, ...]]] = field(default_factory=list)
    series: dict[str, list[str]] = field(default_factory=dict)

    def start(self, name: str, python: str | type, *, fast: bool = False, **params: Any) -> Any:
        """Start the simulator class ``python`` (a class, or ``"module:Class"``) under ``name`` with ``params``.

        A simulator steps once per scenario step (``time.resolution_s``) and sees time in those steps, unless
        ``fast``: then it steps on the world's tick (``time_resolution`` is the tick length). When the world's
        tick is shorter than the step, the slow ones are wrapped in :class:`~simulators.rates.SlowStepped`.
        In a real-time run every simulator is wrapped in :class:`~simulators.pacing.Paced`, so its steps start
        at their wall-clock time (:class:`~simulators.pacing.WallClock`)."""
        cls = python
        if isinstance(python, str):
            module, _, cls_name = python.partition(":")
            cls = getattr(importlib.import_module(module), cls_name)
        if self.ticks_per_step > 1 and not fast:
            cls = functools.partial(SlowStepped, inner=cls, ticks=self.ticks_per_step)
        if self.clock is not None:
            starter = PythonStarter(Paced, kwargs={"inner": cls, "clock": self.clock})
        else:
            starter = PythonStarter(cls)
        return self.world.start(starter, sim_id=name, **params)

    def provide(self, name: str, entity: Any) -> None:
        if name in self._entities:
            raise ValueError(f"two parts provide the entity {name!r}")
        self._entities[name] = entity

    def provided(self, name: str) -> bool:
        """Whether an earlier part provided ``name``."""
        return name in self._entities

    def entity(self, name: str) -> Any:
        """An entity an earlier part provided (``"grid"``, ``"fleet"``, ...)."""
        if name not in self._entities:
            raise ValueError(f"no part provided {name!r} (known: {', '.join(self._entities) or 'none'})")
        return self._entities[name]

    def connect(self, src: Any, dest: Any, *attrs: Any, **kw: Any) -> None:
        self.world.connect(src, dest, *attrs, **kw)

    def record(self, entity: Any, attrs: Sequence[str], series: Mapping[str, Sequence[str]] | None = None) -> None:
        """Record ``attrs`` of ``entity`` in ``timeseries.parquet`` and the KPIs; ``series`` gives the element ids
        of array-valued attributes (``{attr: ids}``)."""
        self.recorded.append((entity, tuple(attrs)))
        for attr, ids in (series or {}).items():
            self.series[attr] = list(ids)


class Part:
    """A part of a run (see the module docstring). Subclasses set ``name`` and override ``build``."""

    name = "part"

    def build(self, builder: WorldBuilder) -> None:
        raise NotImplementedError

    def kpis(self, builder: WorldBuilder) -> dict[str, Any]:
        """This part's section of ``kpis.json`` after the run (``{}``: none)."""
        return {}

    def criteria(self, kpis: Mapping[str, Any]) -> list[Criterion]:
        """This part's criteria of the run's verdict, from the run's KPIs."""
        return []

    def close(self) -> None:
        """Release what the part holds; called once, whether the run succeeded or not."""
