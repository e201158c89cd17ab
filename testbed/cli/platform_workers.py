"""``fpp platform --workers N``: N platform worker processes on one broker and one PostgreSQL ledger.

This process prepares the ledger (tables, prosumer registry, the workers' shared-subscription group), starts
the N workers as child processes, prints one "serving" line once every worker is connected, and stops them all
on SIGTERM or Ctrl-C (or when one of them ends: the others are stopped and the exit status is 1).
``--worker-index I`` runs worker I alone, for workers spread over machines. How the workers stay correct
together is in :mod:`testbed.platform.workers`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import signal
import sys
import threading
import time

from testbed.domain.errors import UserError

log = logging.getLogger(__name__)
MAX_WORKERS = 64
START_TIMEOUT_S = 60.0


def _problems(args: argparse.Namespace) -> list[str]:
    problems = []
    if not 1 <= args.workers <= MAX_WORKERS:
        problems.append(f"--workers {args.workers}: must lie in 1..{MAX_WORKERS}")
    elif args.worker_index is not None and not 0 <= args.worker_index < args.workers:
        problems.append(f"--worker-index {args.worker_index}: must lie in 0..{args.workers - 1}")
    if not args.broker:
        problems.append(
            "--workers needs --broker mqtt://host:port of an MQTT 5 broker such as Mosquitto: the embedded amqtt "
            "broker speaks 3.1.1, which has no shared subscriptions"
        )
    if not args.ledger.startswith(("postgresql://", "postgres://")):
        problems.append(f"--workers needs a PostgreSQL ledger (postgresql://...), not {args.ledger!r}: "
                        "several processes write it at once")
    return problems


def run_workers(args: argparse.Namespace) -> int:
    if args.worker_index is not None and args.workers is None:
        raise UserError("fpp platform: bad options", ["--worker-index needs --workers N"])
    problems = _problems(args)
    if problems:
        raise UserError("fpp platform: bad options", problems)
    from testbed.cli.platform import _check_mechanism
    from testbed.platform.registry import load_registry
    from testbed.platform.workers import SharedLedger, worker_group

    ledger = SharedLedger(args.ledger, prefix=args.ledger_prefix)
    try:
        if args.prosumers:
            ledger.upsert_prosumers(load_registry(args.prosumers).rows())
        if not ledger.prosumers():
            raise UserError("no prosumers registered", ["give --prosumers FILE (the ledger has none yet)"])
        group = worker_group(ledger)
    finally:
        ledger.close()
    _check_mechanism(args.mechanism)
    if args.worker_index is not None:
        return serve_worker(args, args.worker_index, group)
    return _supervise(args, group)


def serve_worker(args: argparse.Namespace, index: int, group: str, ready=None) -> int:  # noqa: ANN001
    """Run worker ``index`` of ``group`` until SIGTERM; ``ready`` (an event) is set once it is connected. Its
    "serving" line goes to stdout when it runs alone, to stderr under the supervisor (which prints its own)."""
    from testbed.cli.platform import platform_config, platform_connection
    from testbed.platform.acl import worker_account
    from testbed.platform.workers import SharedLedger, WorkerCore, WorkerService

    conn = platform_connection(args, worker_account(index))
    ledger = SharedLedger(args.ledger, prefix=args.ledger_prefix)
    core = WorkerCore(ledger, platform_config(args), index)

    async def main() -> None:
        service = WorkerService(core, conn, group=group, clock=args.clock, gate_lead_s=args.gate_lead_s)
        task = asyncio.create_task(service.run())
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await asyncio.wait(
            [task, asyncio.create_task(service.connected.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        if task.done():
            task.result()  # it ended before connecting: raise what ended it
        if ready is not None:
            ready.set()
        print(
            f"fpp platform worker {index}/{args.workers}: serving on {conn.address.url} in group {group}, "
            f"ledger {args.ledger}",
            file=sys.stdout if ready is None else sys.stderr,
            flush=True,
        )
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    finally:
        ledger.close()
        print(
            f"fpp platform worker {index}: stopped ({core.stats}, {time.process_time():.1f} s CPU)",
            file=sys.stderr,
            flush=True,
        )
    return 0


def _child(args: argparse.Namespace, index: int, group: str, ready) -> None:  # noqa: ANN001
    """A worker process: Ctrl-C goes to the supervisor, which stops the workers with SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s w{index} %(name)s: %(message)s")
    try:
        sys.exit(serve_worker(args, index, group, ready))
    except UserError as exc:
        print(f"fpp platform worker {index}: error: {exc.render()}", file=sys.stderr, flush=True)
        sys.exit(2)


def _supervise(args: argparse.Namespace, group: str) -> int:
    ctx = multiprocessing.get_context("spawn")  # no state of this process leaks into the workers
    readies = [ctx.Event() for _ in range(args.workers)]
    procs = [
        ctx.Process(target=_child, args=(args, i, group, readies[i]), name=f"fpp-platform-w{i}", daemon=False)
        for i in range(args.workers)
    ]
    stopping = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        for proc in procs:
            proc.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(r.is_set() for r in readies):
            dead = [p.name for p in procs if not p.is_alive()]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} ended" if dead else f"not all connected within {START_TIMEOUT_S:g} s"
                raise UserError("the platform workers did not start", [why + " (see their messages above)"])
            if stopping.wait(0.05):
                return 0
        print(
            f"fpp platform: serving on {args.broker} with {args.workers} workers (group {group}), ledger "
            f"{args.ledger}",
            flush=True,
        )
        while not stopping.is_set():
            if not all(p.is_alive() for p in procs):
                ended = [f"{p.name} (exit {p.exitcode})" for p in procs if not p.is_alive()]
                print(f"fpp platform: {', '.join(ended)} ended; stopping the others", file=sys.stderr, flush=True)
                return 1
            stopping.wait(0.2)
        return 0
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(15)
            if proc.is_alive():
                proc.kill()
                proc.join()
        signal.signal(signal.SIGTERM, previous)
