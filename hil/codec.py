"""SunSpec register codec built from pysunspec2's model definitions (JSON), never from hand-typed maps.

Pure: no sockets, no clocks. A :class:`ModelLayout` places every point of one SunSpec model at its register
offset (repeating groups such as model 705's curves are laid out for the counts you choose), and
:func:`encode_model` / :func:`decode_model` turn physical values into 16-bit registers and back.

Conventions (SunSpec Information Model Specification, as implemented by pysunspec2 ``sunspec2/mb.py``):

- value = raw × 10^SF, where SF is the ``sunssf`` point named by the point's ``sf`` attribute (looked up in
  the point's own group first, then in the model's top-level group), or a literal integer;
- "not implemented" sentinels: int16 0x8000, uint16/count/enum16/bitfield16 0xFFFF, acc16/acc32/acc64 0,
  int32 0x80000000, uint32/enum32/bitfield32 0xFFFFFFFF, int64 0x8000000000000000,
  uint64 0xFFFF_FFFF_FFFF_FFFF, float32/float64 NaN, string all zeros, sunssf 0x8000; decoded as ``None``;
- a device map starts with 'SunS' (0x5375 0x6E53) at the base address (40000), then each model as
  ID, L, points, and ends with ID 0xFFFF, L 0.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

SUNS_BASE_ADDR = 40000
SUNS_MARKER = (0x5375, 0x6E53)  # 'SunS'
END_MODEL_ID = 0xFFFF

# type -> (registers, struct code or None, "not implemented" raw value as an unsigned integer)
_TYPES: dict[str, tuple[int, str | None, int]] = {
    "int16": (1, "h", 0x8000),
    "uint16": (1, "H", 0xFFFF),
    "count": (1, "H", 0xFFFF),
    "acc16": (1, "H", 0),
    "enum16": (1, "H", 0xFFFF),
    "bitfield16": (1, "H", 0xFFFF),
    "pad": (1, "H", 0),
    "sunssf": (1, "h", 0x8000),
    "int32": (2, "i", 0x80000000),
    "uint32": (2, "I", 0xFFFFFFFF),
    "acc32": (2, "I", 0),
    "enum32": (2, "I", 0xFFFFFFFF),
    "bitfield32": (2, "I", 0xFFFFFFFF),
    "ipaddr": (2, "I", 0),
    "int64": (4, "q", 0x8000000000000000),
    "uint64": (4, "Q", 0xFFFFFFFFFFFFFFFF),
    "acc64": (4, "Q", 0),
    "float32": (2, "f", 0x7FC00000),
    "float64": (4, "d", 0x7FF8000000000000),
    "ipv6addr": (8, None, 0),
    "eui48": (4, None, 0),
    "string": (0, None, 0),  # length from the point's "size"
}
_SF_SENTINEL = -32768


class CodecError(ValueError):
    """A value that cannot be encoded, a model definition we cannot lay out, or a bad register image."""


@dataclass(frozen=True)
class PointSlot:
    """One point of a laid-out model.

    ``path`` is the point name, prefixed by its groups with indices for repeating groups
    (``Crv[0].Pt[2].V``); ``offset`` counts registers from the model's ID register; ``sf`` is the path of
    the scale-factor point, an integer literal, or ``None``.
    """

    path: str
    type: str
    offset: int
    size: int
    access: str
    sf: str | int | None
    units: str | None
    mandatory: bool
    static_value: Any = None


@dataclass(frozen=True)
class ModelLayout:
    """Register layout of one SunSpec model: ``length`` is L (registers after ID and L)."""

    model_id: int
    name: str
    length: int
    slots: dict[str, PointSlot]

    @property
    def total_registers(self) -> int:
        return self.length + 2

    def slot(self, path: str) -> PointSlot:
        try:
            return self.slots[path]
        except KeyError:
            raise CodecError(f"model {self.model_id} ({self.name}) has no point {path!r}") from None


@cache
def model_definition(model_id: int) -> dict[str, Any]:
    """The pysunspec2 JSON definition of a model (``sunspec2/models/json/model_<id>.json``)."""
    ref = resources.files("sunspec2").joinpath("models", "json", f"model_{model_id}.json")
    if not ref.is_file():
        raise CodecError(f"pysunspec2 has no definition for SunSpec model {model_id}")
    return json.loads(ref.read_text(encoding="utf-8"))


def _point_regs(pdef: dict[str, Any]) -> int:
    ptype = pdef["type"]
    if ptype not in _TYPES:
        raise CodecError(f"point {pdef['name']}: unsupported SunSpec type {ptype!r}")
    regs = _TYPES[ptype][0]
    return int(pdef["size"]) if ptype == "string" else regs


def _group_count(gdef: dict[str, Any], counts: dict[str, int]) -> int:
    count = gdef.get("count")
    if count is None:
        return 1
    if isinstance(count, int):
        return count
    if count not in counts:
        raise CodecError(f"group {gdef['name']} repeats {count!r} times: give counts={{{count!r}: n}} to lay it out")
    return int(counts[count])


def layout_model(model_id: int, counts: dict[str, int] | None = None) -> ModelLayout:
    """Lay out a model from its pysunspec2 definition.

    ``counts`` gives the value of each count point of repeating groups (e.g. ``{"NCrv": 3, "NPt": 4}`` for
    model 705); models without repeating groups need none.
    """
    counts = dict(counts or {})
    mdef = model_definition(model_id)
    top = mdef["group"]
    slots: dict[str, PointSlot] = {}
    offset = 0

    def resolve_sf(sf: Any, group_points: set[str], prefix: str) -> str | int | None:
        if sf is None:
            return None
        if isinstance(sf, int):
            return sf
        if isinstance(sf, str) and sf.lstrip("-").isdigit():
            return int(sf)
        if sf in group_points:
            return prefix + sf
        if sf in top_points:
            return sf
        raise CodecError(f"model {model_id}: scale factor {sf!r} not found")

    top_points = {p["name"] for p in top.get("points", [])}

    def walk(gdef: dict[str, Any], prefix: str) -> None:
        nonlocal offset
        names = {p["name"] for p in gdef.get("points", [])}
        for pdef in gdef.get("points", []):
            regs = _point_regs(pdef)
            path = prefix + pdef["name"]
            slots[path] = PointSlot(
                path=path,
                type=pdef["type"],
                offset=offset,
                size=regs,
                access=pdef.get("access", "R"),
                sf=resolve_sf(pdef.get("sf"), names, prefix),
                units=pdef.get("units"),
                mandatory=pdef.get("mandatory", "O") == "M",
                static_value=pdef.get("value"),
            )
            offset += regs
        for sub in gdef.get("groups", []):
            n = _group_count(sub, counts)
            for i in range(n):
                sub_prefix = (
                    f"{prefix}{sub['name']}[{i}]." if sub.get("count") is not None else (f"{prefix}{sub['name']}.")
                )
                walk(sub, sub_prefix)

    walk(top, "")
    length = offset - 2
    declared = slots["L"].static_value
    if declared is not None and int(declared) != length:
        raise CodecError(f"model {model_id}: definition says L={declared} but its points take {length} registers")
    return ModelLayout(model_id=model_id, name=top["name"], length=length, slots=slots)


# --- single values ------------------------------------------------------------------------------------


def _to_regs(raw: int, regs: int) -> list[int]:
    return [(raw >> (16 * (regs - 1 - i))) & 0xFFFF for i in range(regs)]


def _from_regs(registers: list[int]) -> int:
    raw = 0
    for reg in registers:
        raw = (raw << 16) | (reg & 0xFFFF)
    return raw


def sentinel_registers(slot: PointSlot) -> list[int]:
    """Registers holding the "not implemented" value of a point."""
    if slot.type in ("string", "ipv6addr", "eui48"):
        return [0] * slot.size
    return _to_regs(_TYPES[slot.type][2], slot.size)


def encode_raw(slot: PointSlot, raw: int | float | str) -> list[int]:
    """Registers for a raw (unscaled) value; raises :class:`CodecError` if it does not fit the type."""
    if slot.type == "string":
        data = str(raw).encode("utf-8")
        if len(data) > 2 * slot.size:
            raise CodecError(f"{slot.path}: string {raw!r} longer than {2 * slot.size} bytes")
        data = data.ljust(2 * slot.size, b"\0")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    code = _TYPES[slot.type][1]
    if code is None:
        if not isinstance(raw, int) or raw < 0 or raw >= 1 << (16 * slot.size):
            raise CodecError(f"{slot.path}: {raw!r} does not fit {slot.type}")
        return _to_regs(raw, slot.size)
    try:
        packed = struct.pack(f">{code}", raw)
    except struct.error as exc:
        raise CodecError(f"{slot.path}: {raw!r} does not fit {slot.type} ({exc})") from None
    if (
        code not in "fd"
        and int.from_bytes(packed, "big") == _TYPES[slot.type][2]
        and slot.type not in ("acc16", "acc32", "acc64", "pad", "ipaddr")
    ):
        raise CodecError(f"{slot.path}: {raw!r} is the 'not implemented' sentinel of {slot.type}")
    return [int.from_bytes(packed[i : i + 2], "big") for i in range(0, len(packed), 2)]


def decode_raw(slot: PointSlot, registers: list[int]) -> int | float | str | None:
    """Raw value of a point from its registers; ``None`` for the "not implemented" sentinel."""
    if len(registers) != slot.size:
        raise CodecError(f"{slot.path}: expected {slot.size} registers, got {len(registers)}")
    if slot.type == "string":
        data = b"".join(int(r).to_bytes(2, "big") for r in registers)
        text = data.split(b"\0", 1)[0].decode("utf-8", errors="replace")
        return text or None
    unsigned = _from_regs(registers)
    if unsigned == _TYPES[slot.type][2] and slot.type != "pad":
        return None
    code = _TYPES[slot.type][1]
    if code is None:
        return unsigned
    value = struct.unpack(f">{code}", unsigned.to_bytes(2 * slot.size, "big"))[0]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# --- whole models -------------------------------------------------------------------------------------


def _sf_value(layout: ModelLayout, slot: PointSlot, raw_values: dict[str, Any]) -> int | None:
    if slot.sf is None:
        return 0
    if isinstance(slot.sf, int):
        return slot.sf
    sf = raw_values.get(slot.sf)
    return None if sf is None else int(sf)


def encode_model(layout: ModelLayout, values: dict[str, Any], scale_factors: dict[str, int]) -> list[int]:
    """Registers (ID, L, points) of a model.

    ``values`` holds physical values by point path (scaled with the model's SF points, whose raw values are
    given in ``scale_factors``); enum and bitfield points take their integer value, strings their text.
    Points absent from both dicts get their "not implemented" sentinel. Raises :class:`CodecError` naming
    every value that does not fit.
    """
    regs = [0] * layout.total_registers
    raw_values: dict[str, Any] = {"ID": layout.model_id, "L": layout.length}
    problems: list[str] = []
    for path, sf in scale_factors.items():
        if layout.slot(path).type != "sunssf":
            problems.append(f"{path} is not a scale factor point")
        elif not -10 <= sf <= 10:
            problems.append(f"{path}={sf}: SunSpec scale factors lie in -10..10")
        raw_values[path] = sf
    for path, value in values.items():
        slot = layout.slot(path)
        if slot.type == "sunssf":
            problems.append(f"{path} is a scale factor: give it in scale_factors")
            continue
        if value is None or slot.type in ("string",) or slot.sf is None:
            raw_values[path] = value
            continue
        sf = _sf_value(layout, slot, raw_values)
        if sf is None:
            problems.append(f"{path}: its scale factor {slot.sf} is not given")
            continue
        raw_values[path] = round(float(value) / 10**sf)
    for path, slot in layout.slots.items():
        raw = raw_values.get(path)
        try:
            chunk = sentinel_registers(slot) if raw is None else encode_raw(slot, raw)
        except CodecError as exc:
            problems.append(str(exc))
            continue
        regs[slot.offset : slot.offset + slot.size] = chunk
    if problems:
        raise CodecError(f"model {layout.model_id}: " + "; ".join(problems))
    return regs


def decode_model(
    layout: ModelLayout, registers: list[int], *, scaled: bool = True, points: Iterable[str] | None = None
) -> dict[str, Any]:
    """Values of the model's points by path (``None`` when not implemented or its scale factor is missing).

    ``points`` names the points wanted (default: every point); only those and the scale factors they need are
    decoded, each once. Gives the same values as :func:`decode_raw` point by point, scaled as
    :func:`encode_model` scales.
    """
    if len(registers) < layout.total_registers:
        raise CodecError(f"model {layout.model_id}: need {layout.total_registers} registers, got {len(registers)}")
    if registers[0] != layout.model_id:
        raise CodecError(f"registers start with model id {registers[0]}, expected {layout.model_id}")
    plan = _decode_plan(layout)
    if points is None:
        wanted = plan.values()
    else:
        points = list(points)
        unknown = [p for p in points if p not in plan]
        if unknown:
            raise CodecError(f"model {layout.model_id} ({layout.name}) has no point(s) {', '.join(map(repr, unknown))}")
        wanted = [plan[p] for p in points]
    buf = _register_bytes(registers, layout.total_registers)
    if not scaled:
        return {pc.path: pc.decode(buf) for pc in wanted}
    out: dict[str, Any] = {}
    sfs: dict[str, int | None] = {}
    for pc in wanted:
        value = pc.decode(buf)
        sf = pc.sf
        if value is None or sf is None or pc.unscaled:
            out[pc.path] = value
            continue
        if isinstance(sf, str):
            if sf not in sfs:
                sfs[sf] = plan[sf].decode(buf)
            sf = sfs[sf]
            if sf is None:
                out[pc.path] = None
                continue
            if not -10 <= sf <= 10:
                raise CodecError(f"model {layout.model_id}: {pc.sf}={sf}: SunSpec scale factors lie in -10..10")
        out[pc.path] = _scale(value, int(sf))
    return out


@dataclass(frozen=True)
class _PointDecoder:
    """How to read one point from a model's register bytes (compiled once per layout)."""

    path: str
    start: int  # byte offset in the model's registers
    end: int
    fmt: str | None  # struct format, None for strings and raw integer types
    sentinel: bytes | None  # the "not implemented" bytes (None: the type has none that decodes as None)
    is_string: bool
    is_float: bool
    sf: str | int | None
    unscaled: bool  # scale factors and strings are never scaled

    def decode(self, buf: bytes) -> int | float | str | None:
        data = buf[self.start : self.end]
        if self.is_string:
            return data.split(b"\0", 1)[0].decode("utf-8", errors="replace") or None
        if data == self.sentinel:
            return None
        if self.fmt is None:
            return int.from_bytes(data, "big")
        value = struct.unpack(self.fmt, data)[0]
        if self.is_float and math.isnan(value):
            return None
        return value


def _decode_plan(layout: ModelLayout) -> dict[str, _PointDecoder]:
    plan = layout.__dict__.get("_decode_plan")
    if plan is None:
        plan = {}
        for path, slot in layout.slots.items():
            nregs, code, sentinel = _TYPES[slot.type]
            is_string = slot.type == "string"
            plan[path] = _PointDecoder(
                path=path,
                start=2 * slot.offset,
                end=2 * (slot.offset + slot.size),
                fmt=None if code is None or is_string else f">{code}",
                sentinel=None if is_string or slot.type == "pad" else sentinel.to_bytes(2 * slot.size, "big"),
                is_string=is_string,
                is_float=code in ("f", "d"),
                sf=slot.sf,
                unscaled=slot.type in ("sunssf", "string"),
            )
        object.__setattr__(layout, "_decode_plan", plan)  # a cache beside the frozen fields (plain data)
    return plan


def _register_bytes(registers: list[int], count: int) -> bytes:
    """The first ``count`` registers as big-endian bytes (each register taken modulo 2^16, as decode_raw does)."""
    regs = registers[:count]
    try:
        return struct.pack(f">{count}H", *regs)
    except struct.error:
        return struct.pack(f">{count}H", *(int(r) & 0xFFFF for r in regs))


def _scale(raw: int | float, sf: int) -> float:
    return round(raw * 10.0**sf, max(0, -sf)) if sf < 0 else float(raw * 10**sf)


def scale_of(layout: ModelLayout, path: str, scale_factors: dict[str, int]) -> int:
    """Scale factor applying to ``path`` given the model's SF values (0 when the point has none)."""
    slot = layout.slot(path)
    if slot.sf is None:
        return 0
    if isinstance(slot.sf, int):
        return slot.sf
    if slot.sf not in scale_factors:
        raise CodecError(f"{path}: scale factor {slot.sf} not given")
    return scale_factors[slot.sf]


# --- device maps --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapEntry:
    layout: ModelLayout
    address: int  # Modbus address of the model's ID register


def device_map(layouts: list[ModelLayout], base: int = SUNS_BASE_ADDR) -> list[MapEntry]:
    """Addresses of each model in a SunSpec map starting at ``base`` (after the 2 'SunS' registers)."""
    entries = []
    address = base + 2
    for layout in layouts:
        entries.append(MapEntry(layout, address))
        address += layout.total_registers
    if address + 2 > 0x10000:
        raise CodecError(f"device map of {len(layouts)} models does not fit below register 65535")
    return entries


def map_registers(entries: list[MapEntry], model_registers: list[list[int]]) -> list[int]:
    """Whole register image: 'SunS', each model, end marker (0xFFFF, 0)."""
    image = list(SUNS_MARKER)
    for entry, regs in zip(entries, model_registers, strict=True):
        if len(regs) != entry.layout.total_registers:
            raise CodecError(
                f"model {entry.layout.model_id}: {len(regs)} registers for a model of {entry.layout.total_registers}"
            )
        image.extend(regs)
    image.extend([END_MODEL_ID, 0])
    return image
