"""``fpp platform``: run the P2P/FPP platform service; ``fpp platform acl``: credentials and ACL file."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import signal
import ssl
import sys
import time
from pathlib import Path

from testbed.domain.errors import UserError
from testbed.domain.market.mechanisms import DEFAULT_MECHANISM, MECHANISM_NAMES

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "platform",
        help="run the P2P energy platform service over MQTT",
        description="Run the platform service: prosumers send orders over MQTT, the platform clears each "
        "market interval at gate closure and publishes trades, settlements and dispatch. "
        "See docs/platform.md for the protocol.",
    )
    parser.add_argument(
        "--broker",
        help="mqtt://host:port or mqtts://host:port (default: start the embedded "
        "amqtt broker on 127.0.0.1:--listen-port)",
    )
    parser.add_argument("--listen-port", type=int, default=1883, help="port of the embedded broker")
    parser.add_argument(
        "--ledger",
        default="sqlite:///fpp-ledger.db",
        help="sqlite:///relative.db, sqlite:////absolute.db or postgresql://user@host/db",
    )
    parser.add_argument("--ledger-prefix", default="fpp_", help="prefix of the ledger's table names")
    parser.add_argument(
        "--prosumers", type=Path, help="registry of prosumers (YAML/JSON); kept in the ledger"
    )
    parser.add_argument(
        "--mechanism", default=DEFAULT_MECHANISM, choices=MECHANISM_NAMES,
        help=f"market mechanism (default: {DEFAULT_MECHANISM})",
    )
    parser.add_argument("--interval-s", type=float, default=900.0, help="market interval length [s]")
    parser.add_argument(
        "--import-price-per-kwh", "--import-price", dest="import_price_per_kwh", type=float, default=0.30,
        help="retail import price [currency/kWh]",
    )
    parser.add_argument(
        "--export-price-per-kwh", "--export-price", dest="export_price_per_kwh", type=float, default=0.08,
        help="retail export price [currency/kWh]",
    )
    parser.add_argument("--islanded", action="store_true", help="no grid tariff (islanded community)")
    parser.add_argument(
        "--clock",
        choices=("sim", "wall"),
        default="sim",
        help="sim: gates close when the clock account says so; wall: on the wall clock",
    )
    parser.add_argument(
        "--gate-lead-s",
        type=float,
        default=60.0,
        help="wall clock: gate closes this long before the interval starts [s]",
    )
    parser.add_argument(
        "--credentials",
        type=Path,
        help="credentials.json from `fpp platform acl` (uses the 'platform' account)",
    )
    parser.add_argument("--tls-ca", type=Path, help="CA file for mqtts://")
    parser.add_argument("--tls-cert", type=Path, help="client certificate for mqtts://")
    parser.add_argument("--tls-key", type=Path, help="client key for mqtts://")
    parser.add_argument("--max-payload-bytes", type=int, default=16_384)
    parser.add_argument(
        "--mqtt-version", choices=("3.1.1", "5", "auto"), default="3.1.1",
        help="the platform's MQTT version (default 3.1.1, the cheaper one; auto: 5 where the broker speaks it); "
        "workers always speak 5",
    )
    parser.add_argument(
        "--workers", type=int, metavar="N",
        help="run N platform worker processes that share the inbound load through MQTT 5 shared "
        "subscriptions and one PostgreSQL ledger (needs --broker with MQTT 5 and a postgresql:// --ledger; "
        "see docs/platform.md)",
    )
    parser.add_argument(
        "--worker-index", type=int, metavar="I",
        help="with --workers N: run only worker I (0..N-1) here, e.g. one per machine; worker 0 takes gate "
        "closures and grid-service messages",
    )
    parser.set_defaults(func=run_platform)
    sub = parser.add_subparsers(dest="platform_command", metavar="SUBCOMMAND")
    acl = sub.add_parser(
        "acl",
        help="write per-prosumer credentials and a Mosquitto ACL file",
        description="Write acl, passwd (hashed), credentials.json (0600) and mosquitto.conf for Mosquitto, so "
        "each prosumer can publish only under its own id and connect only under its own client id.",
    )
    who = acl.add_mutually_exclusive_group(required=True)
    who.add_argument("--prosumers", type=Path, help="registry of prosumers (YAML/JSON)")
    who.add_argument(
        "--scenario", type=Path, help="a scenario: its prosumers' platform ids, for its market.credentials"
    )
    acl.add_argument("--out", type=Path, required=True, help="directory to write into")
    acl.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="accounts for N platform workers (platform, platform-w1, ...; fpp platform --workers)",
    )
    acl.set_defaults(func=run_acl)


def run_acl(args: argparse.Namespace) -> int:
    from testbed.platform.acl import write_acl
    from testbed.platform.registry import load_registry

    if args.scenario is not None:
        from testbed.orchestration.parts.market import platform_ids
        from testbed.orchestration.plan import load_plan

        plan = load_plan(args.scenario)
        ids = list(platform_ids([pr.id for pr in plan.prosumers]).values())
    else:
        ids = [e.id for e in load_registry(args.prosumers).prosumers]
    if not 1 <= args.workers <= 64:
        raise UserError("fpp platform acl: bad options", [f"--workers {args.workers}: must lie in 1..64"])
    write_acl(ids, args.out, workers=args.workers)
    workers = f" ({args.workers} worker accounts)" if args.workers > 1 else ""
    print(
        f"wrote {args.out / 'acl'}, {args.out / 'passwd'} and {args.out / 'credentials.json'} "
        f"for {len(ids)} prosumers, the platform{workers}, the clock and the operator"
    )
    print(
        f"include {args.out / 'mosquitto.conf'} in Mosquitto's configuration (it pins client ids to accounts);\n"
        "passwd and credentials.json are 0600: Mosquitto's own user (e.g. mosquitto) must be able to read passwd "
        "(chown it, or set `user` in mosquitto.conf)"
    )
    return 0


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.tls_ca or args.tls_cert):
        return None
    ctx = ssl.create_default_context(cafile=str(args.tls_ca) if args.tls_ca else None)
    if args.tls_cert:
        ctx.load_cert_chain(str(args.tls_cert), str(args.tls_key) if args.tls_key else None)
    return ctx


def _check_mechanism(mechanism: str) -> None:
    """Import the market library now (it takes a second or two), so the first gate closure is not slow."""
    try:
        from testbed.domain.market import MECHANISMS
    except ImportError:
        raise UserError("the market library is missing", ["testbed.domain.market cannot be imported"]) from None
    if mechanism not in MECHANISMS:
        choices = ", ".join(MECHANISMS)
        raise UserError("fpp platform: bad options", [f"--mechanism {mechanism!r}: choose one of {choices}"])


def platform_connection(args: argparse.Namespace, account: str = "platform"):  # noqa: ANN201 (a Connection)
    """``account``'s connection to the broker (``--broker``, else the embedded one's port); its password comes
    from ``--credentials`` (a worker other than the first has its own account, ``fpp platform acl --workers``)."""
    from testbed.platform.broker import BrokerAddress, parse_broker_url
    from testbed.platform.client import Connection

    username = password = None
    if args.credentials:
        try:
            password = json.loads(args.credentials.read_text())[account]
            username = account
        except KeyError:
            raise UserError(
                "cannot read the platform's credentials",
                [f"{args.credentials}: no password for the account {account!r} (`fpp platform acl --workers N` "
                 "writes one for each worker)"],
            ) from None
        except (OSError, ValueError) as exc:
            raise UserError(
                "cannot read the platform's credentials", [f"{args.credentials}: {exc}"]
            ) from None
    address = parse_broker_url(args.broker) if args.broker else BrokerAddress("127.0.0.1", args.listen_port)
    version = {"auto": None, "5": 5, "3.1.1": 4}[args.mqtt_version]
    return Connection(address, username=username, password=password, tls_context=_tls(args), mqtt_version=version)


def platform_config(args: argparse.Namespace):  # noqa: ANN201 (testbed.platform.core.PlatformConfig)
    from testbed.domain.prosumer import Tariff
    from testbed.platform.core import PlatformConfig

    tariff = (
        None
        if args.islanded
        else Tariff(import_price_per_kwh=args.import_price_per_kwh, export_price_per_kwh=args.export_price_per_kwh)
    )
    return PlatformConfig(
        interval_s=args.interval_s,
        mechanism=args.mechanism,
        tariff=tariff,
        max_payload_bytes=args.max_payload_bytes,
        # on the wall clock a new ledger opens at the current interval, not at interval 0 of 1970
        first_interval=(
            math.floor((time.time() + args.gate_lead_s) / args.interval_s) + 1 if args.clock == "wall" else 0
        ),
    )


def run_platform(args: argparse.Namespace) -> int:
    from testbed.cli import options as opt
    from testbed.platform.core import PlatformCore
    from testbed.platform.ledger import Ledger
    from testbed.platform.registry import load_registry
    from testbed.platform.service import PlatformService

    problems = [
        pr
        for pr in (
            opt.positive_seconds("--interval-s", args.interval_s, maximum=31 * 86_400.0),
            opt.non_negative_seconds("--gate-lead-s", args.gate_lead_s),
            opt.finite("--import-price-per-kwh", args.import_price_per_kwh, -10.0, 10.0),
            opt.finite("--export-price-per-kwh", args.export_price_per_kwh, -10.0, 10.0),
            None if args.broker else opt.tcp_port("--listen-port", args.listen_port),
            None
            if 256 <= args.max_payload_bytes <= 1 << 20
            else f"--max-payload-bytes {args.max_payload_bytes}: must lie in 256..1048576",
        )
        if pr
    ]
    if not args.islanded and args.import_price_per_kwh < args.export_price_per_kwh:
        problems.append(
            f"--import-price-per-kwh {args.import_price_per_kwh} is below --export-price-per-kwh "
            f"{args.export_price_per_kwh}"
        )
    if problems:
        raise UserError("fpp platform: bad options", problems)
    if args.workers is not None:
        from testbed.cli.platform_workers import run_workers

        return run_workers(args)
    conn = platform_connection(args)
    address = conn.address
    ledger = Ledger(args.ledger, prefix=args.ledger_prefix)
    if args.prosumers:
        ledger.upsert_prosumers(load_registry(args.prosumers).rows())
    core = PlatformCore(ledger, platform_config(args))
    if not core.prosumers:
        raise UserError("no prosumers registered", ["give --prosumers FILE (the ledger has none yet)"])
    _check_mechanism(args.mechanism)

    async def main() -> None:
        embedded = None
        if not args.broker:
            from testbed.platform.broker import EmbeddedBroker

            embedded = await EmbeddedBroker("127.0.0.1", args.listen_port).start()
        # one MQTT session per ledger, under a random id kept in it: a restarted platform resumes its session,
        # two platforms never share one, and nobody can guess it from the ledger URL
        service = PlatformService(core, conn, clock=args.clock, gate_lead_s=args.gate_lead_s)
        task = asyncio.create_task(service.run())
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        await asyncio.wait(
            [task, asyncio.create_task(service.connected.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        print(
            f"fpp platform: serving on {address.url} with {len(core.prosumers)} prosumers, ledger "
            f"{args.ledger}",
            flush=True,
        )
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            if embedded is not None:
                await embedded.stop()

    try:
        asyncio.run(main())
    finally:
        ledger.close()
        print(
            f"fpp platform: stopped ({core.stats}, {time.process_time():.1f} s CPU)",
            file=sys.stderr,
            flush=True,
        )
    return 0
