"""``fpp run``, ``fpp validate``, ``fpp schema`` and ``fpp report``: scenario files and run folders."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from testbed.domain.errors import UserError


def _positive_ms(text: str) -> float:
    """A finite lateness budget > 0 [ms] (argparse reports anything else as a usage error, exit 2)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of milliseconds > 0")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a scenario and write its results folder")
    p.add_argument("scenario", type=Path, help="scenario YAML file")
    p.add_argument("--out", type=Path, help="results folder of this run (default: <outputs.dir>/<run-id>)")
    p.add_argument("--seed", type=int, help="seed instead of the scenario's (the same as --set seed=N)")
    _add_set(p)
    p.add_argument(
        "--check", action="store_true",
        help="exit 1 when the run's verdict does not pass (for CI pipelines); without it a run that finished "
        "exits 0 whatever its verdict",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--real-time", action="store_true", help="pace the run at wall-clock speed (for hardware in the loop)"
    )
    p.add_argument(
        "--max-lateness-ms",
        type=_positive_ms,
        metavar="MS",
        help="with --real-time: end the run as a fault (exit 3) when a step starts later than MS milliseconds "
        "(overrides the scenario's time.max_lateness_ms)",
    )
    p.set_defaults(func=_run)

    p = sub.add_parser("validate", help="check a scenario and everything it names, reporting every problem")
    p.add_argument("scenario", type=Path, help="scenario YAML file")
    _add_set(p)
    p.set_defaults(func=_validate)

    p = sub.add_parser("schema", help="print the scenario JSON Schema (for editor completion)")
    p.add_argument("--out", type=Path, help="write to this file instead of stdout")
    p.set_defaults(func=_schema)

    p = sub.add_parser("report", help="write report.html of a run folder again (fpp run writes it too)")
    p.add_argument("run_dir", type=Path, help="a run folder written by fpp run")
    p.set_defaults(func=_report)


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", action="append", default=[], metavar="PATH=VALUE", dest="overrides",
        help="override a scenario field by its dotted path, validated like the file "
        "(e.g. --set fleet.battery.share=0.8 --set prosumers[0].pv.kwp=6); repeatable",
    )


def _overrides(args: argparse.Namespace) -> dict:
    from testbed.domain.scenario.overrides import parse_assignment

    return dict(parse_assignment(text) for text in args.overrides)


def _report(args: argparse.Namespace) -> int:
    from testbed.orchestration.report import write_report

    print(write_report(args.run_dir))
    return 0


def _run(args: argparse.Namespace) -> int:
    from testbed.orchestration.plan import load_plan
    from testbed.orchestration.run_folder import check_fresh_run_dir
    from testbed.orchestration.runner import run

    if args.out is not None:
        check_fresh_run_dir(args.out)  # before loading anything
    plan = load_plan(args.scenario, overrides=_overrides(args), seed=args.seed)
    sc = plan.scenario
    print(
        f"running {sc.name}: {sc.time.n_steps} steps of {sc.time.resolution_s} s, {len(plan.prosumers)} prosumers, "
        f"{plan.engine.info.name} on {sc.grid.engine}, seed {sc.seed}",
        file=sys.stderr,
    )
    if args.max_lateness_ms is not None and not args.real_time:
        raise UserError("--max-lateness-ms: only a real-time run has a lateness budget; add --real-time")
    result = run(plan, args.out, progress=not args.no_progress, real_time=args.real_time,
                 max_lateness_ms=args.max_lateness_ms)
    k = result.kpis
    print(f"results: {result.run_dir} (verdict and charts: report.html)")
    print(f"  verdict: {result.verdict.summary()}")
    if result.fault is not None:  # exit 3 with or without --check: the run did not finish
        raise result.fault
    print(
        f"  {k['steps']} steps in {result.wall_s:.1f} s; non-converged steps: {k['non_converged_steps']}\n"
        f"  voltage {k['v_min_pu']:.4f}..{k['v_max_pu']:.4f} pu, "
        f"{k['minutes_outside_voltage_limits']:.0f} min outside limits; "
        f"peak transformer loading {k['peak_trafo_loading_pct']:.1f} %\n"
        f"  grid import {k['grid_import_kwh']:.1f} kWh, export {k['grid_export_kwh']:.1f} kWh; "
        f"self-sufficiency {_pct(k['self_sufficiency'])}"
    )
    if "real_time" in k:
        rt = k["real_time"]
        print(
            f"  real time: warm-up {rt['warmup_s']:.1f} s; step lateness p50 {rt['lateness_p50_ms']:.1f} ms, "
            f"p99 {rt['lateness_p99_ms']:.1f} ms, max {rt['lateness_max_ms']:.1f} ms; "
            f"missed deadlines {rt['missed_deadlines']}"
            + (f" (ticks of {rt['step_s']:g} s)" if "slow_steps" in rt else "")
        )
    if "frequency_response" in k:
        fr = k["frequency_response"]
        figures = "; ".join(f"{name.split(' ≥')[0]} {value:.1f} %" for name, value in fr["criteria"].items()
                            if value is not None)
        print(
            f"  frequency response ({fr['service']}): {fr['members']} batteries, {fr['contracted_kw']:g} kW "
            f"contracted, {fr['ticks']} ticks of {fr['tick_s']:g} s; {figures}; members failing alone "
            f"{fr['members_failing']}"
            + (f"; nadir {fr['nadir_hz']:.3f} Hz ({fr['nadir_lift_mhz']:+.0f} mHz by the response)"
               if "nadir_hz" in fr else "")
        )
    if "market" in k:
        m = k["market"]
        price = m["price_per_kwh"]["volume_weighted"]
        print(
            f"  market ({m['mechanism']}): {m['traded_kwh']:.1f} kWh traded in {m['trades']} trades"
            + (f" at {price:.4f}/kWh on average" if price is not None else "")
            + f"; bills {m['bill_platform_total']:.2f} against {m['bill_retail_total']:.2f} at the retail tariff; "
            f"green energy delivered {m['green_kwh']:.1f} kWh"
            + (f"; transport {m['transport']}, broker {m['broker']}" if "transport" in m else "")
        )
    return result.verdict.exit_code if args.check else 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _validate(args: argparse.Namespace) -> int:
    from testbed.orchestration.plan import load_plan

    plan = load_plan(args.scenario, overrides=_overrides(args))
    sc = plan.scenario
    n_pv = sum(p.pv is not None for p in plan.prosumers)
    n_bat = sum(p.battery is not None for p in plan.prosumers)
    n_ev = sum(p.ev is not None for p in plan.prosumers)
    print(
        f"{args.scenario}: valid. {len(plan.prosumers)} prosumers ({n_pv} with PV, {n_bat} with batteries, "
        f"{n_ev} with EVs) on {plan.engine.info.name} ({len(plan.engine.info.bus_ids)} buses, {sc.grid.engine}); "
        f"{sc.time.n_steps} steps of {sc.time.resolution_s} s from {sc.time.start.isoformat()}."
    )
    fr = sc.frequency_response
    if fr is not None:
        from testbed.domain.scenario.references import frequency_responders

        members = frequency_responders(fr, plan.prosumers)[0]
        ticks = round(sc.time.n_steps * sc.time.resolution_s / fr.step_s)
        print(f"  frequency response: {len(members)} batteries answer {fr.service} ({fr.signal.kind}) every "
              f"{fr.step_s:g} s: {ticks:,} ticks beside the {sc.time.n_steps:,} steps")
    return 0


def scenario_json_schema() -> dict:
    from testbed.domain.scenario.models import Scenario

    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "fpp-testbed scenario"
    return schema


def _schema(args: argparse.Namespace) -> int:
    text = json.dumps(scenario_json_schema(), indent=2) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
