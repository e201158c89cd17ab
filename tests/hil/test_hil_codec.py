"""SunSpec codec against pysunspec2's definitions and the published SunSpec conventions.

Sources: SunSpec Information Model Specification (value = raw × 10^SF, "not implemented" sentinels) as
implemented in pysunspec2 ``sunspec2/mb.py``; model lengths from /work/shared/reference/grid-services.md and
the JSON definitions shipped with pysunspec2 1.3.7.
"""

from __future__ import annotations

import math

import pytest
import sunspec2.mb as mb
import sunspec2.mdef as mdef

from hil.codec import (
    CodecError,
    decode_model,
    decode_raw,
    device_map,
    encode_model,
    encode_raw,
    layout_model,
    map_registers,
    sentinel_registers,
)


@pytest.mark.parametrize(
    ("model_id", "length"),
    # grid-services.md: 1 (L 66), 701 (L 153), 702 (L 50), 713 (L 7), legacy 103 (L 50).
    [(1, 66), (701, 153), (702, 50), (713, 7), (103, 50)],
)
def test_fixed_model_lengths_match_published(model_id, length):
    assert layout_model(model_id).length == length


def test_704_length_follows_the_shipped_definition():
    # grid-services.md says L 57 for 704; pysunspec2 1.3.7's model_704.json declares L 65 (it added the
    # PF/reversion points). The codec never hand-types lengths: it takes the definition's own value.
    declared = layout_model(704).slots["L"].static_value
    assert declared == 65
    assert layout_model(704).length == 65


def test_repeating_groups_are_laid_out_for_given_counts():
    # 705: 13 fixed registers after ID and L, each curve 10 registers + 2 per point:
    # L = 13 + 2·(10 + 3·2) = 45.
    layout = layout_model(705, {"NCrv": 2, "NPt": 3})
    assert layout.length == 45
    assert layout.slot("Crv[1].Pt[2].Var").sf == "DeptRef_SF"
    with pytest.raises(CodecError, match="NCrv"):
        layout_model(705)


def test_legacy_models_lay_out():
    # 120–124 have no declared L in the definition; the layout is the sum of their points.
    lengths = {m: layout_model(m).length for m in (120, 121, 122, 123, 124)}
    assert lengths == {120: 26, 121: 30, 122: 44, 123: 24, 124: 24}


def test_scaled_roundtrip_of_701():
    layout = layout_model(701)
    sfs = {"W_SF": -1, "Hz_SF": -3, "V_SF": -1, "Var_SF": 0}
    regs = encode_model(layout, {"W": -1234.5, "Hz": 49.987, "LLV": 400.1, "Var": 2200, "ACType": 2}, sfs)
    assert len(regs) == 155 and regs[:2] == [701, 153]
    # raw registers by hand: W = -12345 as int16 = 0xCFC7; Hz = 49987 as uint32 = 0x0000 0xC343
    w = layout.slot("W")
    assert regs[w.offset] == (-12345) & 0xFFFF
    hz = layout.slot("Hz")
    assert regs[hz.offset : hz.offset + 2] == [0, 49987]
    values = decode_model(layout, regs)
    assert values["W"] == pytest.approx(-1234.5, abs=1e-9)
    assert values["Hz"] == pytest.approx(49.987, abs=1e-9)
    assert values["LLV"] == pytest.approx(400.1, abs=1e-9)
    assert values["Var"] == 2200
    assert values["VA"] is None  # not given -> sentinel -> None
    assert values["TmpAmb"] is None


@pytest.mark.parametrize(
    "ptype",
    [
        "int16",
        "uint16",
        "enum16",
        "bitfield16",
        "acc16",
        "int32",
        "uint32",
        "acc32",
        "enum32",
        "bitfield32",
        "int64",
        "uint64",
        "acc64",
        "sunssf",
        "float32",
        "count",
    ],
)
def test_sentinels_agree_with_pysunspec2(ptype):
    from hil.codec import PointSlot

    size = mdef.point_type_info[ptype]["len"]
    slot = PointSlot("x", ptype, 0, size, "R", None, None, False)
    regs = sentinel_registers(slot)
    expected = mb.unimpl_value[ptype]
    as_unsigned = expected & ((1 << (16 * size)) - 1) if isinstance(expected, int) else None
    raw = 0
    for r in regs:
        raw = (raw << 16) | r
    assert raw == as_unsigned
    assert decode_raw(slot, regs) is None


def test_encoding_a_sentinel_value_is_refused():
    from hil.codec import PointSlot

    slot = PointSlot("W", "int16", 0, 1, "R", None, None, False)
    with pytest.raises(CodecError, match="not implemented"):
        encode_raw(slot, -32768)
    with pytest.raises(CodecError, match="does not fit"):
        encode_raw(slot, 40000)


def test_out_of_range_physical_value_names_the_point():
    layout = layout_model(701)
    with pytest.raises(CodecError, match="W"):
        encode_model(layout, {"W": 5000.0}, {"W_SF": -1})  # 50000 does not fit int16


def test_missing_scale_factor_decodes_as_none():
    layout = layout_model(701)
    regs = encode_model(layout, {"W": 100.0}, {"W_SF": 0})
    sf = layout.slot("W_SF")
    regs[sf.offset] = 0x8000  # W_SF "not implemented"
    assert decode_model(layout, regs)["W"] is None


def test_strings_and_float_nan():
    from hil.codec import PointSlot

    s = PointSlot("Mn", "string", 0, 4, "R", None, None, False)
    assert decode_raw(s, encode_raw(s, "ACME")) == "ACME"
    assert decode_raw(s, [0, 0, 0, 0]) is None
    f = PointSlot("x", "float32", 0, 2, "R", None, None, False)
    assert math.isclose(decode_raw(f, encode_raw(f, 1.5)), 1.5)
    assert decode_raw(f, [0x7FC0, 0]) is None


def test_device_map_layout():
    layouts = [layout_model(1), layout_model(701)]
    entries = device_map(layouts)
    assert [e.address for e in entries] == [40002, 40002 + 68]
    image = map_registers(entries, [encode_model(x, {}, {}) for x in layouts])
    assert image[:2] == [0x5375, 0x6E53]  # 'SunS'
    assert image[-2:] == [0xFFFF, 0]
    assert len(image) == 2 + 68 + 155 + 2
