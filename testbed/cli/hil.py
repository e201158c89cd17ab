"""``fpp hil``: emulated SunSpec devices and a scanner for real ones.

- ``fpp hil emulate --kind inverter|battery --port N [--unit 1] [--count K] [--rated-kw ..]
  [--capacity-kwh ..]`` serves K emulated devices (unit ids unit..unit+K-1 on one port) and an emulated grid
  simulator.
- ``fpp hil scan --address host:port [--unit 1]`` lists a device's SunSpec models and its 701 measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from testbed.cli import options as opt
from testbed.domain.errors import UserError

KINDS = {"inverter": "pv", "pv": "pv", "battery": "battery"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("hil", help="hardware in the loop: emulated SunSpec devices, device scan")
    sub = parser.add_subparsers(dest="hil_command", metavar="HIL_COMMAND")
    sub.required = True

    em = sub.add_parser("emulate", help="serve emulated SunSpec DERs (OpenDER) on Modbus TCP")
    em.add_argument("--kind", required=True, choices=sorted(KINDS), help="device kind")
    em.add_argument("--port", type=int, required=True, help="TCP port of the devices (0 = any free port)")
    em.add_argument("--unit", type=int, default=1, help="Modbus unit id of the first device (default 1)")
    em.add_argument("--count", type=int, default=1, help="number of devices on the port (consecutive unit ids)")
    em.add_argument("--rated-kw", type=float, default=10.0, help="active power rating [kW] (default 10)")
    em.add_argument("--rated-kva", type=float, default=None, help="apparent power rating [kVA] (default = kW)")
    em.add_argument("--capacity-kwh", type=float, default=None, help="battery energy [kWh] (battery only)")
    em.add_argument("--soc", type=float, default=0.5, help="initial state of charge 0..1 (battery)")
    em.add_argument("--f-nom-hz", type=float, default=50.0, help="nominal frequency [Hz] (50 or 60)")
    em.add_argument("--grid-port", type=int, default=0, help="port of the emulated grid simulator (0 = free)")
    em.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    em.add_argument("--dt", type=float, default=0.05, help="device step [s] (default 0.05)")
    em.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until interrupted)",
    )
    _misbehaviour_options(em)
    em.set_defaults(func=_emulate)

    sc = sub.add_parser("scan", help="list a SunSpec device's models and read its AC measurement")
    sc.add_argument("--address", required=True, help="host:port")
    sc.add_argument("--unit", type=int, default=1, help="Modbus unit id 1..247 (default 1)")
    sc.add_argument("--timeout", type=float, default=1.0, help="connect and request timeout [s], > 0 (default 1)")
    sc.set_defaults(func=_scan)


MISBEHAVIOUR_OPTIONS = {
    "slow_p_s": ("p_response_s", "non-compliant: P follows setpoints, droop and Volt-Watt this slowly [s, 90 %%]"),
    "slow_q_s": ("q_response_s", "non-compliant: reactive power follows Volt-VAR this slowly [s, 90 %%]"),
    "deadband_hz": ("deadband_hz", "non-compliant: apply this droop deadband [Hz, 60 Hz basis] whatever is written"),
    "droop": ("droop", "non-compliant: apply this droop [pu, e.g. 0.1] whatever is written"),
    "volt_var_offset_pu": ("volt_var_offset_pu", "non-compliant: shift the Volt-VAR curve by this voltage [pu]"),
    "volt_watt_offset_pu": ("volt_watt_offset_pu", "non-compliant: shift the Volt-Watt curve by this voltage [pu]"),
    "stop_following_after_s": ("stop_following_after_s", "non-compliant: freeze the output after this time [s]"),
    "stop_answering_after_s": ("stop_answering_after_s", "fault: stop answering Modbus after this time [s]"),
}


def _misbehaviour_options(parser: argparse.ArgumentParser) -> None:
    """Options that make the emulated devices fail service tests on purpose (hil.misbehaviour)."""
    group = parser.add_argument_group("devices that fail on purpose (service tests)")
    for dest, (_, help_text) in MISBEHAVIOUR_OPTIONS.items():
        group.add_argument("--" + dest.replace("_", "-"), dest=dest, type=float, default=None, help=help_text)
    group.add_argument("--service-test", action="store_true",
                       help="a compliant device under a service test: it follows setpoints with a first-order response")


def _misbehaviour(args: argparse.Namespace):
    from hil.misbehaviour import Misbehaviour

    given = {field: getattr(args, dest, None) for dest, (field, _) in MISBEHAVIOUR_OPTIONS.items()}
    m = Misbehaviour(**given)
    if not m.any and not getattr(args, "service_test", False):
        return None, []
    return m, m.problems()


def _specs(args: argparse.Namespace):
    from hil.behaviour import DerRating
    from hil.emulator import DeviceSpec

    kind = KINDS[args.kind]
    problems = [
        pr
        for pr in (
            opt.tcp_port("--port", args.port, allow_any=True),
            opt.tcp_port("--grid-port", args.grid_port, allow_any=True),
            opt.positive_seconds("--dt", args.dt, maximum=60.0),
            opt.positive_seconds("--duration", args.duration, maximum=366 * 86_400.0),
        )
        if pr
    ]
    if args.count < 1 or not 1 <= args.unit or args.unit + args.count - 1 > 247:
        problems.append(f"--unit {args.unit} --count {args.count}: unit ids must lie in 1..247")
    if kind == "battery" and args.capacity_kwh is None:
        problems.append("--capacity-kwh: needed for a battery")
    if kind == "pv" and args.capacity_kwh is not None:
        problems.append("--capacity-kwh: only for a battery")
    rating = DerRating(
        kind=kind,
        rated_kw=args.rated_kw,
        rated_kva=args.rated_kva,
        capacity_kwh=args.capacity_kwh,
        soc_init=args.soc,
        f_nom_hz=args.f_nom_hz,
    )
    problems += [p for p in rating.problems() if not p.startswith("capacity_kwh")]
    misbehaviour, bad = _misbehaviour(args)
    problems += bad
    if problems:
        raise UserError("fpp hil emulate: bad options", problems)
    return [
        DeviceSpec(
            rating,
            port=args.port,
            unit=args.unit + i,
            serial=f"EMU-{args.unit + i:04d}",
            port_group="cli",
            misbehaviour=misbehaviour,
        )
        for i in range(args.count)
    ]


def _emulate(args: argparse.Namespace) -> int:
    from hil.emulator import EmulatorHost

    specs = _specs(args)

    async def run() -> None:
        host = EmulatorHost(specs, dt_s=args.dt, grid_port=args.grid_port, host=args.host)
        try:
            await host.start()
        except OSError as exc:
            raise UserError(f"fpp hil emulate: cannot listen on {args.host}:{args.port}", [str(exc)]) from None
        try:
            info = {
                "devices": [
                    {
                        "address": f"{args.host}:{d.port}",
                        "unit": d.spec.unit,
                        "kind": d.spec.rating.kind,
                        "grid_channel": d.channel,
                    }
                    for d in host.devices
                ],
                "grid_simulator": f"{args.host}:{host.grid_port}",
            }
            print(json.dumps(info), flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            try:
                await asyncio.wait_for(stop.wait(), args.duration)
            except TimeoutError:
                pass
        finally:
            await host.stop()

    asyncio.run(run())
    return 0


def _scan(args: argparse.Namespace) -> int:
    from hil.client import SunSpecClient, parse_address
    from hil.errors import HilError

    problems = [
        pr
        for pr in (opt.modbus_unit("--unit", args.unit), opt.positive_seconds("--timeout", args.timeout, maximum=600.0))
        if pr
    ]
    try:
        parse_address(args.address)
    except ValueError as exc:
        problems.append(f"--address: {exc}")
    if problems:
        raise UserError("fpp hil scan: bad options", problems)

    async def run() -> dict:
        async with SunSpecClient(
            args.address, args.unit, connect_timeout_s=args.timeout, timeout_s=args.timeout
        ) as dev:
            out = {"models": {m: e.layout.length for m, e in dev.models.items()}}
            for mid in (701, 103):
                if mid in dev.models:
                    values = await dev.read_model(mid)
                    out[str(mid)] = {k: v for k, v in values.items() if v is not None and not k.endswith("_SF")}
                    break
            return out

    try:
        result = asyncio.run(run())
    except (HilError, ValueError) as exc:
        raise UserError(f"fpp hil scan: cannot read {args.address} unit {args.unit}", [str(exc)]) from None
    print(json.dumps(result, indent=1, default=str))
    return 0
