"""The ``fpp`` command line.

Each command group lives in its own module with a ``register(subparsers)`` function that adds its
sub-commands and sets ``func`` on them; ``main`` dispatches and turns a :class:`UserError` (exit 2) or a
:class:`Fault` (exit 3) into one clear paragraph on stderr; a command's own return value is its exit status.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import sys

from testbed import __version__
from testbed.domain.errors import EXIT_FAULT, EXIT_USER_ERROR, Fault, UserError

# One line per command group module (testbed/cli/<name>.py).
COMMAND_MODULES: tuple[str, ...] = (
    "testbed.cli.scenario_cmds",
    "testbed.cli.hil",
    "testbed.cli.grid",
    "testbed.cli.market",
    "testbed.cli.platform",
    "testbed.cli.service_test",
    "testbed.cli.coalition",
    "testbed.cli.campaign",
    "testbed.cli.compare",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fpp", description="Federated power plant testbed: co-simulation and hardware in the loop."
    )
    parser.add_argument("--version", action="version", version=f"fpp {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _mosaik_logging(verbose: bool) -> None:
    """mosaik logs through loguru; the runner keeps it off (configure_logging=False) unless -v is given."""
    if verbose:
        from loguru import logger

        logger.enable("mosaik")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _mosaik_logging(verbose=args.verbose > 0)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"fpp {args.command}: error: {exc.render()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Fault as exc:
        print(f"fpp {args.command}: fault: {exc.render()}", file=sys.stderr)
        return EXIT_FAULT
    except KeyboardInterrupt as exc:
        print(f"fpp {args.command}: interrupted" + (f": {exc}" if str(exc) else ""), file=sys.stderr)
        return 130


def entry() -> None:
    """The ``fpp`` program: :func:`main`, then exit with its status.

    The heap is frozen (``gc.freeze``) before exiting: Python's finalisation would otherwise collect every
    object of the run (pandas, pandapower, numba; ~300,000 after a day without market) in passes that took
    ~3 s on the 2-core development machine, while the operating system frees an ending process's memory anyway.
    Frozen objects are still released by reference counting at exit; only cyclic garbage is left to the OS.
    """
    status = main()
    gc.freeze()
    sys.exit(status)


if __name__ == "__main__":
    entry()
