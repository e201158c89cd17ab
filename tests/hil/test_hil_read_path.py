"""The read path: each model decoded once per read, only the points asked for, with the values the point-by-point
decoder (``decode_raw``) gives. Reference semantics: SunSpec Information Model Specification (value = raw ×
10^SF, "not implemented" sentinels), as implemented in pysunspec2 ``sunspec2/mb.py``."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hil.client
from hil.behaviour import DerRating
from hil.client import SunSpecClient
from hil.codec import CodecError, decode_model, decode_raw, encode_model, layout_model
from hil.emulator import DeviceSpec, EmulatorThread

# Fixed-length models of every point type the codec knows (strings, floats, 64-bit, pads, ip addresses).
LAYOUTS = [layout_model(m) for m in (1, 701, 702, 704, 713, 103, 124)] + [layout_model(705, {"NCrv": 2, "NPt": 3})]


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), layout=st.sampled_from(LAYOUTS))
def test_whole_model_decode_equals_point_by_point_decode(data, layout):
    n = layout.total_registers
    # Registers biased to the sentinels and extremes, where the decoders could disagree.
    reg = st.one_of(st.integers(0, 0xFFFF), st.sampled_from([0, 0x7FC0, 0x8000, 0xFFFF]))
    regs = [layout.model_id, *data.draw(st.lists(reg, min_size=n - 1, max_size=n - 1))]
    raw = decode_model(layout, regs, scaled=False)
    assert list(raw) == list(layout.slots)
    for path, slot in layout.slots.items():
        assert _same(raw[path], decode_raw(slot, regs[slot.offset : slot.offset + slot.size])), path
    asked = data.draw(st.lists(st.sampled_from(list(layout.slots)), max_size=6, unique=True))
    expected = {p: _scaled_by_hand(layout, raw, p) for p in asked}
    if any(v == "bad sf" for v in expected.values()):
        with pytest.raises(CodecError, match="scale factors lie in -10..10"):
            decode_model(layout, regs, points=asked)
        return
    subset = decode_model(layout, regs, points=asked)
    assert list(subset) == asked
    assert all(_same(subset[p], expected[p]) for p in asked)


def _scaled_by_hand(layout, raw: dict, path: str):
    """value = raw × 10^SF; None when not implemented or its SF is; "bad sf" for an SF outside -10..10."""
    slot, value = layout.slots[path], raw[path]
    if value is None or slot.sf is None or slot.type in ("sunssf", "string"):
        return value
    sf = slot.sf if isinstance(slot.sf, int) else raw[slot.sf]
    if sf is None:
        return None
    if not -10 <= sf <= 10:
        return "bad sf"
    return round(value * 10.0**sf, -sf) if sf < 0 else float(value * 10**sf)


def test_scaled_subset_by_hand():
    layout = layout_model(701)
    regs = encode_model(layout, {"W": -1234.5, "Var": 2200, "Hz": 49.987}, {"W_SF": -1, "Var_SF": 0, "Hz_SF": -3})
    # W = -12345 × 10^-1; Var = 2200 × 10^0; VA is not implemented (sentinel 0x8000) and stays None.
    assert decode_model(layout, regs, points=["W", "Var", "VA"]) == {"W": -1234.5, "Var": 2200.0, "VA": None}
    assert decode_model(layout, regs, points=[]) == {}
    with pytest.raises(CodecError, match="'Watts', 'Vars'"):
        decode_model(layout, regs, points=["W", "Watts", "Vars"])


@pytest.fixture(scope="module")
def inverter_port():
    with EmulatorThread([DeviceSpec(DerRating("pv", 10.0))], dt_s=0.05) as emu:
        yield emu.ports[0]


def test_a_read_decodes_the_model_once_and_writes_scale_with_it(inverter_port, monkeypatch):
    calls = []

    def counting(layout, registers, **kw):
        calls.append((layout.model_id, kw.get("points")))
        return decode_model(layout, registers, **kw)

    async def scenario():
        async with SunSpecClient(f"127.0.0.1:{inverter_port}", 1, timeout_s=2.0) as dev:
            monkeypatch.setattr(hil.client, "decode_model", counting)
            full = await dev.read_model(701)
            some = await dev.read_model(701, points=("W", "Var"))
            n_reads = len(calls)
            await dev.write_points(704, {"WMaxLimPctEna": 1, "WMaxLimPct": 50.0})
            back = await dev.read_model(704, points=("WMaxLimPct",))
            return full, some, n_reads, back

    full, some, n_reads, back = asyncio.run(scenario())
    assert n_reads == 2  # one decode per read, not two
    assert set(some) == {"W", "Var"}
    assert some["W"] == pytest.approx(full["W"], abs=10.0)  # the device moves between the reads; 10 kW rating
    assert full["W"] == pytest.approx(10000, abs=1)  # 10 kW of PV at full irradiance (emulator default)
    assert back == {"WMaxLimPct": pytest.approx(50.0)}
