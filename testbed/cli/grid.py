"""``fpp grid solve``, ``fpp grid compare`` and ``fpp grid export``: one power flow from the command line."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from simulators.grid.factory import ENGINES

NETWORK_HELP = (
    "simbench:<code>, pandapower:<function> (e.g. pandapower:case33bw), or a path to a pandapower .json "
    "or an OpenDSS .dss file"
)


def register(sub: argparse._SubParsersAction) -> None:
    grid = sub.add_parser("grid", help="solve, compare or export a grid network")
    gsub = grid.add_subparsers(dest="grid_command", metavar="GRID_COMMAND")
    gsub.required = True

    p = gsub.add_parser("solve", help="solve one snapshot with the network's own loads")
    p.add_argument("network", help=NETWORK_HELP)
    p.add_argument(
        "--engine", choices=ENGINES, help="power-flow engine (default: opendss for a .dss file, else pandapower)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_solve)

    p = gsub.add_parser("compare", help="solve on pandapower and OpenDSS and print the largest differences")
    p.add_argument("network", help="simbench:<code>, pandapower:<function> or a pandapower .json file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_compare)

    p = gsub.add_parser("export", help="write a balanced pandapower network as an OpenDSS .dss circuit")
    p.add_argument("network", help="simbench:<code>, pandapower:<function> or a pandapower .json file")
    p.add_argument("out", type=Path, help="the .dss file to write")
    p.set_defaults(func=_export)


def _fmt(x, spec: str) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _solve(args: argparse.Namespace) -> int:
    from simulators.grid.compare import snapshot_dict, solve_own_loads

    engine = args.engine or ("opendss" if args.network.lower().endswith(".dss") else "pandapower")
    eng, snap = solve_own_loads(args.network, engine, base_dir=Path.cwd())
    result = snapshot_dict(eng, snap, engine)
    if args.json:
        json.dump(result, sys.stdout, indent=2, allow_nan=False)
        print()
        return 0 if snap.converged else 1
    out = sys.stdout
    print(f"network {result['network']} on {engine}: {len(result['buses'])} buses, "
          f"{len(result['lines'])} lines, {len(result['trafos'])} transformers"
          + (", unbalanced (per-phase solve)" if result["unbalanced"] else ""), file=out)
    if not snap.converged:
        print(f"converged: no ({snap.message})", file=out)
        return 1
    print(f"converged: yes ({snap.iterations} iterations)", file=out)
    print(f"total losses: {result['losses_kw']:.3f} kW; from the upstream grid: {result['ext_grid_p_kw']:.3f} kW, "
          f"{result['ext_grid_q_kvar']:.3f} kvar", file=out)
    vm = [b["vm_pu"] for b in result["buses"] if b["vm_pu"] is not None]
    if vm:
        lo = min(result["buses"], key=lambda b: b["vm_pu"] if b["vm_pu"] is not None else math.inf)
        print(f"lowest voltage: {lo['vm_pu']:.4f} pu at bus {lo['id']}; highest: {max(vm):.4f} pu", file=out)
    print("\nbus voltages", file=out)
    phase = result["unbalanced"]
    width = max([len("bus")] + [len(b["id"]) for b in result["buses"]])
    head = f"  {'bus':<{width}}  {'vn_kv':>8}  {'vm_pu':>7}  {'va_degree':>9}"
    print(head + ("  vm_pu a / b / c" if phase else ""), file=out)
    for b in result["buses"]:
        line = f"  {b['id']:<{width}}  {b['vn_kv']:>8.3f}  {_fmt(b['vm_pu'], '7.4f')}  {_fmt(b['va_degree'], '9.3f')}"
        if phase:
            line += "  " + " / ".join(_fmt(v, ".4f") for v in b["vm_pu_phase"])
        print(line, file=out)
    for title, key in (("line loadings", "lines"), ("transformer loadings", "trafos")):
        rows = result[key]
        if not rows:
            continue
        width = max([len("element")] + [len(r["id"]) for r in rows])
        print(f"\n{title}\n  {'element':<{width}}  loading_pct", file=out)
        for r in rows:
            print(f"  {r['id']:<{width}}  {_fmt(r['loading_pct'], '11.2f')}", file=out)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from simulators.grid.compare import compare_engines

    result = compare_engines(args.network, base_dir=Path.cwd())
    if args.json:
        json.dump(result, sys.stdout, indent=2, allow_nan=False)
        print()
        return 0 if all(result["converged"]) else 1
    a, b = result["engines"]
    print(f"network {result['network']}: {result['buses']} buses, {a} against {b}")
    if not all(result["converged"]):
        print(f"not compared: {result['message']}")
        return 1

    def row(label: str, key: str, unit: str, spec: str) -> None:
        d = result[key]
        if d["id"] is None:
            print(f"  {label:<28} (none)")
            return
        values = f"{a} {_fmt(d['a'], '.6g')}, {b} {_fmt(d['b'], '.6g')}"
        print(f"  {label:<28} {d['diff']:{spec}} {unit} at {d['id']} ({values})")

    print("largest differences")
    row("bus voltage", "max_vm_diff_pu", "pu", ".2e")
    row("bus voltage angle", "max_va_diff_degree", "degree", ".2e")
    row("line loading", "max_line_loading_diff_pct", "%", ".2e")
    row("transformer loading", "max_trafo_loading_diff_pct", "%", ".2e")
    la, lb = result["losses_kw"]
    rel = result["losses_diff_rel"]
    print(f"  {'total losses':<28} {result['losses_diff_kw']:+.3f} kW ({a} {la:.3f} kW, {b} {lb:.3f} kW"
          + (f", {rel * 100:+.3f} %)" if rel is not None else ")"))
    return 0


def _export(args: argparse.Namespace) -> int:
    from simulators.grid.dss_export import export_pandapower
    from simulators.grid.networks import load_pandapower

    circuit = export_pandapower(load_pandapower(args.network, base_dir=Path.cwd()), name=args.network)
    circuit.write(args.out)
    print(f"wrote {args.out}: {len(circuit.bus_ids)} buses, {len(circuit.line_ids)} lines, "
          f"{len(circuit.trafo_ids)} transformers (bus names b<pandapower index>)")
    return 0
