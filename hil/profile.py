"""The SunSpec face of an emulated DER: which models it serves, their scale factors, state -> registers and
written registers -> controls. Pure (no sockets, no clocks).

Models served: 1 (common), 701 (AC measurement), 702 (capacity), 704 (AC controls), 705 (Volt-VAR, one curve
of 4 points), 711 (frequency droop, one control); PV inverters also 706 (Volt-Watt, one curve of 2 points),
batteries 713 (storage capacity) instead, as many storage units serve no Volt-Watt. Units on the wire
are SunSpec's (W, var, V, Hz, %); everything here converts to the testbed's (kW, kvar, pu, Hz, soc 0..1).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache

from hil.behaviour import DerControls, DerRating, DerState
from hil.codec import (
    CodecError,
    MapEntry,
    ModelLayout,
    decode_model,
    decode_raw,
    device_map,
    encode_model,
    layout_model,
    map_registers,
    model_definition,
)

MODEL_COUNTS: dict[int, dict[str, int]] = {705: {"NCrv": 1, "NPt": 4}, 706: {"NCrv": 1, "NPt": 2}, 711: {"NCtl": 1}}
PV_MODELS = (1, 701, 702, 704, 705, 706, 711)
BATTERY_MODELS = (1, 701, 702, 704, 705, 711, 713)
CONTROL_MODELS = (704, 705, 706, 711)

ENABLED = 1
DEPT_REF_VA_MAX_PCT = 3  # 705 DeptRef symbol VA_MAX_PCT
DEPT_REF_W_MAX_PCT = 0  # 706 DeptRef symbol W_MAX_PCT

# Control points the emulator acts on (by path without group indices); other RW points accept a write only
# of the value they already hold. WSetMod: only WATTS (1) is implemented, not W_MAX_PCT (0).
SUPPORTED_WRITES: dict[int, set[str]] = {
    704: {"WMaxLimPctEna", "WMaxLimPct", "WSetEna", "WSetMod", "WSet"},
    705: {"Ena", "Crv.Pt.V", "Crv.Pt.Var", "Crv.RspTms"},
    706: {"Ena", "Crv.Pt.V", "Crv.Pt.W", "Crv.RspTms"},
    711: {"Ena", "Ctl.DbOf", "Ctl.DbUf", "Ctl.KOf", "Ctl.KUf", "Ctl.RspTms"},
}
SUPPORTED_VALUES: dict[tuple[int, str], set[int]] = {(704, "WSetMod"): {1}}
_INDEX = re.compile(r"\[\d+\]")


@cache
def enum_values(model_id: int) -> dict[str, set[int]]:
    """Allowed raw values of each enumerated point of a model (path without group indices -> symbol values),
    from the model's definition."""
    out: dict[str, set[int]] = {}

    def walk(group: dict, prefix: str) -> None:
        for point in group.get("points", []):
            symbols = point.get("symbols")
            if symbols and point.get("type", "").startswith("enum"):
                out[prefix + point["name"]] = {int(sym["value"]) for sym in symbols}
        for sub in group.get("groups", []):
            walk(sub, prefix + sub["name"] + ".")

    walk(model_definition(model_id)["group"], "")
    return out


def power_sf(rated_w: float, headroom: float = 1.5) -> int:
    """Smallest scale factor >= 0 that fits ``headroom`` × rating in an int16 (|raw| <= 32767)."""
    sf = 0
    while rated_w * headroom / 10**sf > 32767:
        sf += 1
    return sf


@dataclass(frozen=True)
class Identity:
    manufacturer: str = "FPP testbed"
    model: str = "OpenDER emulator"
    serial: str = "EMU-0001"
    version: str = "1"


class SunSpecProfile:
    """Register image of one emulated device and the decoding of what clients write into it."""

    def __init__(self, rating: DerRating, identity: Identity | None = None) -> None:
        self.rating = rating
        self.identity = identity or Identity()
        ids = BATTERY_MODELS if rating.kind == "battery" else PV_MODELS
        self.layouts: dict[int, ModelLayout] = {m: layout_model(m, MODEL_COUNTS.get(m)) for m in ids}
        self.entries: list[MapEntry] = device_map(list(self.layouts.values()))
        self.address = {e.layout.model_id: e.address for e in self.entries}
        psf = power_sf(rating.kva * 1000.0)
        whsf = power_sf((rating.capacity_kwh or 0.0) * 1000.0, headroom=1.0)
        self.sf: dict[int, dict[str, int]] = {
            1: {},
            701: {
                "A_SF": -2,
                "V_SF": -1,
                "Hz_SF": -3,
                "W_SF": psf,
                "PF_SF": -3,
                "VA_SF": psf,
                "Var_SF": psf,
                "TotWh_SF": 0,
                "TotVarh_SF": 0,
                "Tmp_SF": -1,
            },
            702: {"W_SF": psf, "PF_SF": -3, "VA_SF": psf, "Var_SF": psf, "V_SF": -1, "A_SF": -1, "S_SF": 0},
            704: {
                "PF_SF": -3,
                "WMaxLimPct_SF": -1,
                "WSet_SF": psf,
                "WSetPct_SF": -1,
                "VarSet_SF": psf,
                "VarSetPct_SF": -1,
            },
            705: {"V_SF": -1, "DeptRef_SF": -1, "RspTms_SF": 0},
            706: {"V_SF": -1, "DeptRef_SF": -1, "RspTms_SF": 0},
            711: {"Db_SF": -3, "K_SF": -3, "RspTms_SF": 0},
            713: {"WH_SF": whsf, "Pct_SF": -1},
        }
        self._static = {m: self._encode(m, self._static_values(m)) for m in (1, 702)}

    # --- encoding ---------------------------------------------------------------------------------

    def _encode(self, model_id: int, values: dict) -> list[int]:
        return encode_model(self.layouts[model_id], values, self.sf[model_id])

    def _static_values(self, model_id: int) -> dict:
        r = self.rating
        if model_id == 1:
            i = self.identity
            return {"Mn": i.manufacturer, "Md": i.model, "SN": i.serial, "Vr": i.version, "DA": 1}
        w, va = r.rated_kw * 1000.0, r.kva * 1000.0
        values = {
            "WMaxRtg": w,
            "VAMaxRtg": va,
            "VarMaxInjRtg": 0.44 * va,
            "VarMaxAbsRtg": 0.44 * va,
            "VNomRtg": r.v_nom,
            "VMaxRtg": 1.1 * r.v_nom,
            "VMinRtg": 0.88 * r.v_nom,
            "AMaxRtg": va / (math.sqrt(3) * r.v_nom),
            "NorOpCatRtg": 1,
            "AbnOpCatRtg": 2,
            "WMax": w,
            "VAMax": va,
            "VNom": r.v_nom,
        }
        if r.kind == "battery":
            values |= {"WChaRteMaxRtg": w, "WDisChaRteMaxRtg": w, "WChaRteMax": w, "WDisChaRteMax": w}
        return values

    def measurement_values(self, state: DerState) -> dict:
        """701 point values for a device state."""
        r = self.rating
        s_kva = math.hypot(state.p_kw, state.q_kvar)
        v_ll = state.vm_pu * r.v_nom
        return {
            "ACType": 2,
            "St": 1 if state.connected else 0,
            "InvSt": 3 if state.connected else 6,
            "ConnSt": 1 if state.connected else 0,
            "W": state.p_kw * 1000.0,
            "VA": s_kva * 1000.0,
            "Var": state.q_kvar * 1000.0,
            "PF": state.p_kw / s_kva if s_kva > 1e-9 else 1.0,
            "A": s_kva * 1000.0 / (math.sqrt(3) * v_ll) if v_ll > 0 else 0.0,
            "LLV": v_ll,
            "LNV": v_ll / math.sqrt(3),
            "Hz": state.f_hz,
        }

    def storage_values(self, state: DerState) -> dict:
        cap_wh = (self.rating.capacity_kwh or 0.0) * 1000.0
        soc = state.soc if state.soc is not None else 0.0
        return {"WHRtg": cap_wh, "WHAvail": cap_wh * soc, "SoC": 100.0 * soc, "SoH": 100.0, "Sta": 0}

    def control_values(self, c: DerControls) -> dict[int, dict]:
        vv = {
            "Ena": int(c.volt_var_enabled),
            "AdptCrvReq": 0,
            "AdptCrvRslt": 1,
            "NPt": 4,
            "NCrv": 1,
            "RvrtCrv": 0,
            "Crv[0].ActPt": 4,
            "Crv[0].DeptRef": DEPT_REF_VA_MAX_PCT,
            "Crv[0].VRef": 100.0,
            "Crv[0].RspTms": c.volt_var_response_s,
            "Crv[0].ReadOnly": 0,
        }
        for i, (v, q) in enumerate(c.volt_var):
            vv[f"Crv[0].Pt[{i}].V"] = 100.0 * v
            vv[f"Crv[0].Pt[{i}].Var"] = 100.0 * q
        vw = {
            "Ena": int(c.volt_watt_enabled),
            "AdptCrvReq": 0,
            "AdptCrvRslt": 1,
            "NPt": 2,
            "NCrv": 1,
            "RvrtCrv": 0,
            "Crv[0].ActPt": 2,
            "Crv[0].DeptRef": DEPT_REF_W_MAX_PCT,
            "Crv[0].RspTms": c.volt_watt_response_s,
            "Crv[0].ReadOnly": 0,
        }
        for i, (v, p) in enumerate(c.volt_watt):
            vw[f"Crv[0].Pt[{i}].V"] = 100.0 * v
            vw[f"Crv[0].Pt[{i}].W"] = 100.0 * p
        out = {
            704: {
                "WMaxLimPctEna": int(c.limit_enabled),
                "WMaxLimPct": c.limit_pct,
                "WSetEna": int(c.p_set_enabled),
                "WSetMod": 1,
                "WSet": c.p_set_kw * 1000.0,
            },
            705: vv,
            711: {
                "Ena": int(c.droop_enabled),
                "AdptCtlReq": 0,
                "AdptCtlRslt": 1,
                "NCtl": 1,
                "RvrtCtl": 0,
                "Ctl[0].DbOf": c.droop_db_hz,
                "Ctl[0].DbUf": c.droop_db_hz,
                "Ctl[0].KOf": c.droop_k,
                "Ctl[0].KUf": c.droop_k,
                "Ctl[0].RspTms": c.droop_response_s,
                "Ctl[0].ReadOnly": 0,
            },
        }
        if 706 in self.layouts:
            out[706] = vw
        return out

    def controls_registers(self, controls: DerControls) -> dict[int, list[int]]:
        return {m: self._encode(m, v) for m, v in self.control_values(controls).items()}

    def image(
        self, state: DerState, controls_regs: dict[int, list[int]], overrides: dict[int, int] | None = None
    ) -> list[int]:
        """Whole register image from 40000; ``overrides`` maps absolute addresses to raw register values
        (used to inject faults such as sentinels or out-of-range values)."""
        regs = []
        for entry in self.entries:
            m = entry.layout.model_id
            if m in self._static:
                regs.append(self._static[m])
            elif m in controls_regs:
                regs.append(controls_regs[m])
            elif m == 701:
                regs.append(self._encode(701, self.measurement_values(state)))
            elif m == 713:
                regs.append(self._encode(713, self.storage_values(state)))
        image = map_registers(self.entries, regs)
        for address, raw in (overrides or {}).items():
            image[address - self.entries[0].address + 2] = raw & 0xFFFF
        return image

    def point_address(self, model_id: int, path: str) -> int:
        return self.address[model_id] + self.layouts[model_id].slot(path).offset

    def read_only_ranges(self) -> list[tuple[int, int, bool]]:
        """(address, registers, read-only) runs covering the whole map, for building SimData blocks."""
        runs: list[tuple[int, int, bool]] = [(self.entries[0].address - 2, 2, True)]
        for entry in self.entries:
            for slot in sorted(entry.layout.slots.values(), key=lambda s: s.offset):
                ro = slot.access != "RW"
                address = entry.address + slot.offset
                last = runs[-1]
                if last[2] == ro and last[0] + last[1] == address:
                    runs[-1] = (last[0], last[1] + slot.size, ro)
                else:
                    runs.append((address, slot.size, ro))
        end = self.entries[-1].address + self.entries[-1].layout.total_registers
        runs.append((end, 2, True))
        return runs

    # --- decoding writes --------------------------------------------------------------------------

    def write_problems(self, old: list[int], new: list[int], first: int, count: int) -> list[str]:
        """Why a write of ``count`` registers at image index ``first`` (turning image ``old`` into ``new``) is
        refused: a point set to its "not implemented" value, an enumerated point set to a value its model does
        not define or this device does not implement, or a change to a point the device does not act on.
        Empty when the write is acceptable (ranges are checked by :meth:`controls_from_image`)."""
        base = self.entries[0].address - 2
        problems = []
        for m in CONTROL_MODELS:
            if m not in self.layouts:
                continue
            enums = enum_values(m)
            for slot in self.layouts[m].slots.values():
                at = self.address[m] + slot.offset - base
                if slot.access != "RW" or at + slot.size <= first or at >= first + count:
                    continue
                regs_new, regs_old = new[at : at + slot.size], old[at : at + slot.size]
                if regs_new == regs_old:
                    continue  # rewriting the value it holds (a block write of a whole model)
                name = _INDEX.sub("", slot.path)
                raw = decode_raw(slot, regs_new)
                where = f"{m} {slot.path}"
                if name not in SUPPORTED_WRITES[m]:
                    problems.append(f"{where}: this device does not implement writing it")
                elif raw is None:
                    problems.append(f"{where}={regs_new}: the 'not implemented' value cannot be written")
                elif name in enums and raw not in enums[name]:
                    problems.append(f"{where}={raw}: not a value model {m} defines ({sorted(enums[name])})")
                elif (m, name) in SUPPORTED_VALUES and raw not in SUPPORTED_VALUES[(m, name)]:
                    problems.append(f"{where}={raw}: this device implements only {sorted(SUPPORTED_VALUES[(m, name)])}")
        return problems

    def controls_from_image(self, image: list[int], current: DerControls) -> DerControls:
        """Controls after a client wrote into ``image``; raises :class:`CodecError` naming every bad value."""
        base = self.entries[0].address - 2
        vals = {}
        for m in CONTROL_MODELS:
            if m not in self.layouts:
                vals[m] = {}
                continue
            start = self.address[m] - base
            vals[m] = decode_model(self.layouts[m], image[start : start + self.layouts[m].total_registers])
        problems = []
        c704, c705, c711 = vals[704], vals[705], vals[711]
        r = self.rating

        def pick(d: dict, key: str, old):
            return old if d.get(key) is None else d[key]

        limit_pct = pick(c704, "WMaxLimPct", current.limit_pct)
        if not 0.0 <= limit_pct <= 100.0:
            problems.append(f"704 WMaxLimPct={limit_pct}: must lie in 0..100 %")
        p_set_kw = pick(c704, "WSet", current.p_set_kw * 1000.0) / 1000.0
        if abs(p_set_kw) > r.rated_kw * 1.0000001:
            problems.append(f"704 WSet={p_set_kw * 1000.0} W: beyond the rating ±{r.rated_kw * 1000.0} W")
        curve = []
        for i in range(4):
            v = c705.get(f"Crv[0].Pt[{i}].V")
            q = c705.get(f"Crv[0].Pt[{i}].Var")
            if v is None or q is None:
                problems.append(f"705 Crv[0].Pt[{i}]: V and Var must both be set")
                continue
            curve.append((v / 100.0, q / 100.0))
        if len(curve) == 4 and any(b[0] < a[0] for a, b in zip(curve, curve[1:], strict=False)):
            problems.append(f"705 curve voltages {[p[0] for p in curve]}: must not decrease")
        if len(curve) == 4 and any(abs(q) > 0.44 + 1e-9 for _, q in curve):
            problems.append("705 curve Var: beyond the Category B capability of ±44 % of VAMax")
        c706 = vals[706]
        vw_curve = []
        if 706 in self.layouts:
            for i in range(2):
                v, p = c706.get(f"Crv[0].Pt[{i}].V"), c706.get(f"Crv[0].Pt[{i}].W")
                if v is None or p is None:
                    problems.append(f"706 Crv[0].Pt[{i}]: V and W must both be set")
                    continue
                vw_curve.append((v / 100.0, p / 100.0))
            if len(vw_curve) == 2 and not vw_curve[1][0] > vw_curve[0][0]:
                problems.append(f"706 curve voltages {[p[0] for p in vw_curve]}: V2 must be above V1")
            if any(not -100.0 <= 100.0 * p <= 100.0 for _, p in vw_curve):
                problems.append("706 curve W: must lie in -100..100 % of WMax")
        for over, under in (("Ctl[0].DbOf", "Ctl[0].DbUf"), ("Ctl[0].KOf", "Ctl[0].KUf")):
            if c711.get(over) != c711.get(under):
                problems.append(
                    f"711 {under}={c711.get(under)} differs from {over}={c711.get(over)}: this device implements "
                    "one symmetric droop (write both the same)"
                )
        for key, label in (("Ctl[0].KOf", "KOf"), ("Ctl[0].KUf", "KUf")):
            k = c711.get(key)
            if k is not None and not 0.01 <= k <= 0.10:
                problems.append(f"711 {label}={k}: IEEE 1547 allows 0.01..0.10 (1–10 % droop)")
        if problems:
            raise CodecError("; ".join(problems))
        return DerControls(
            limit_enabled=pick(c704, "WMaxLimPctEna", int(current.limit_enabled)) == ENABLED,
            limit_pct=limit_pct,
            p_set_enabled=pick(c704, "WSetEna", int(current.p_set_enabled)) == ENABLED,
            p_set_kw=p_set_kw,
            volt_var_enabled=pick(c705, "Ena", int(current.volt_var_enabled)) == ENABLED,
            volt_var=tuple(curve) if len(curve) == 4 else current.volt_var,
            volt_var_response_s=pick(c705, "Crv[0].RspTms", current.volt_var_response_s),
            volt_watt_enabled=pick(c706, "Ena", int(current.volt_watt_enabled)) == ENABLED,
            volt_watt=tuple(vw_curve) if len(vw_curve) == 2 else current.volt_watt,
            volt_watt_response_s=pick(c706, "Crv[0].RspTms", current.volt_watt_response_s),
            droop_enabled=pick(c711, "Ena", int(current.droop_enabled)) == ENABLED,
            droop_db_hz=pick(c711, "Ctl[0].DbOf", current.droop_db_hz),
            droop_k=pick(c711, "Ctl[0].KOf", current.droop_k),
            droop_response_s=pick(c711, "Ctl[0].RspTms", current.droop_response_s),
        )
