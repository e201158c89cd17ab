"""Register map of a lab grid simulator: where a channel's voltage, frequency and PV source power go. Pure.

A grid simulator sets what a device sees at its terminals. The testbed's emulated one (:mod:`hil.emulator`)
serves, for channel ``c`` on unit 1, holding registers ``100·c`` (voltage, 1e-4 pu), ``100·c + 1`` (frequency,
1e-3 Hz) and ``100·c + 2`` (PV DC source, 0.1 % of rating). A real grid simulator has its own map: describe
it with a :class:`GridMap` (a test file's ``device.grid_simulator.map``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GridMap:
    """``register = stride·channel + offset``; ``raw = round(value / scale)`` (uint16). ``available_offset``
    None: the simulator has no PV source to drive. ``v_scale`` [pu per count], ``f_scale`` [Hz per count],
    ``available_scale`` [% per count]."""

    unit: int = 1
    stride: int = 100
    v_offset: int = 0
    f_offset: int = 1
    available_offset: int | None = 2
    v_scale: float = 1e-4
    f_scale: float = 1e-3
    available_scale: float = 0.1

    def write(self, channel: int, name: str, value: float) -> tuple[int, list[int]] | None:
        """(register, [raw]) that applies ``name`` (``vm_pu``, ``f_hz``, ``available_pct``) on ``channel``."""
        offset, scale = {
            "vm_pu": (self.v_offset, self.v_scale),
            "f_hz": (self.f_offset, self.f_scale),
            "available_pct": (self.available_offset, self.available_scale),
        }[name]
        if offset is None:
            return None
        raw = round(value / scale)
        if not 0 <= raw <= 0xFFFF:
            raise ValueError(f"{name} {value}: does not fit the grid simulator's register (raw {raw})")
        return self.stride * channel + offset, [raw]


EMULATED_GRID = GridMap()
