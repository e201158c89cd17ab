"""``fpp campaign CAMPAIGN.yaml [--workers N | --dask tcp://host:port] [--resume] [--out DIR]``: run a test
campaign's experiments on Dask and write ``summary.parquet`` and ``campaign.html`` (docs/campaigns.md).

Exit status: 0 every experiment finished (whatever its verdict), 1 some failed (listed in campaign.html), 2 a
bad campaign, a bad experiment (all listed before anything runs) or an unreachable scheduler.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("campaign", help="run a test campaign (a sweep of scenarios or service tests) on Dask")
    p.add_argument("campaign", type=Path, metavar="CAMPAIGN.yaml", help="campaign file (see docs/campaigns.md)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="worker processes of the local Dask cluster (default: cores, ≤ 4)")
    where.add_argument("--dask", metavar="tcp://host:port", help="run on the Dask cluster of this scheduler")
    p.add_argument("--resume", action="store_true",
                   help="go on with the campaign's folder: skip finished experiments, run failed and missing ones")
    p.add_argument("--out", type=Path, help="campaign folder (default: <output_dir>/<name> of the file)")
    p.add_argument("--validate", action="store_true", help="check the campaign and every experiment, run nothing")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from testbed.domain.errors import UserError
    from testbed.orchestration.campaign.engine import progress_printer, run_campaign
    from testbed.orchestration.campaign.plan import load_campaign
    from testbed.orchestration.campaign.results import write_results

    if args.verbose == 0:  # Dask's own INFO lines (workers starting, clients connecting) are noise here
        import logging

        import distributed  # noqa: F401  (its import sets its loggers to INFO: quiet them after it)

        logging.getLogger("distributed").setLevel(logging.ERROR)
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: must be at least 1")
    local = None
    if args.dask is None and not args.validate:  # the local cluster starts while the experiments are checked
        from testbed.orchestration.campaign.engine import start_local_cluster
        from testbed.orchestration.campaign.plan import DEFAULT_DEVICE_RESOURCE, read_campaign

        label = read_campaign(args.campaign).experiment_specification.device_resource
        local = start_local_cluster(args.workers, [label or DEFAULT_DEVICE_RESOURCE])
    try:
        plan = load_campaign(args.campaign, args.out)
    except BaseException:
        from testbed.orchestration.campaign.engine import close_local_cluster

        close_local_cluster(local)
        raise
    n_dev = sum(e.needs_device for e in plan.experiments)
    print(f"{plan.campaign.name}: {len(plan.experiments)} experiments of {plan.base_path.name} "
          f"({plan.kind}), {n_dev} with a device in the loop; folder {plan.out_dir}", file=sys.stderr)
    if args.validate:
        print(f"{args.campaign}: valid, {len(plan.experiments)} experiments")
        return 0
    on_progress, close = progress_printer(plan.campaign.name)
    try:
        outcome = run_campaign(plan, workers=args.workers, address=args.dask, resume=args.resume,
                               on_progress=on_progress, local=local, background_close=True)
    finally:
        close()
    try:
        summary, report = write_results(plan)  # while the local cluster's workers stop
    finally:
        outcome.wait_closed()
    print(f"{plan.campaign.name}: {outcome.done} run, {outcome.skipped} already done, {outcome.failed} failed "
          f"in {outcome.wall_s:.1f} s")
    print(f"  summary: {summary}\n  report:  {report}")
    return 1 if outcome.failed else 0
