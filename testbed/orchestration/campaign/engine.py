"""Running a campaign's experiments on Dask: a LocalCluster of worker processes by default, or a cluster by
its scheduler's address.

- Each experiment is one task; its folder is named by the hash of its content. ``result.json`` is written by
  this process, once, when the experiment has finished or failed: a folder without it was never finished.
  ``resume`` skips the folders whose result is ``done`` and runs the others again (failed or interrupted),
  so a campaign killed at any point and resumed loses no finished experiment and runs none twice.
- An experiment that fails comes back as data; the others go on.
- A worker that dies mid-experiment: the experiment is submitted again once (Dask places it on a live
  worker); if its worker dies again it is marked failed with the reason. On the LocalCluster the scheduler
  gives up on a task at its first lost worker (``allowed-failures: 0``) so this one retry is the only one; a
  remote scheduler applies its own ``distributed.scheduler.allowed-failures`` first.
- An experiment with a device in the loop asks for one unit of the device's resource label (workers that
  reach the device are started with ``--resources LABEL=1``) and holds a lock named after it while it runs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.domain.campaign.design import Experiment
from testbed.domain.errors import UserError
from testbed.orchestration.campaign.experiment import run_experiment
from testbed.orchestration.campaign.plan import CampaignPlan
from testbed.orchestration.run_folder import write_json

log = logging.getLogger(__name__)

ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+(:\d+)?$")
CONNECT_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 2  # the first run, and one more after a worker died under it


@dataclass
class CampaignOutcome:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    wall_s: float = 0.0
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    closing: threading.Thread | None = None

    def wait_closed(self) -> None:
        if self.closing is not None:
            self.closing.join()


def read_result(folder: Path) -> dict[str, Any] | None:
    path = folder / "result.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # half-written by something else: treated as not finished


def check_campaign_dir(plan: CampaignPlan, resume: bool) -> None:
    """Without ``resume``, refuse a folder that already holds this campaign's experiments."""
    exp_dir = plan.out_dir / "experiments"
    if not resume and exp_dir.is_dir() and any(exp_dir.iterdir()):
        raise UserError(
            f"campaign folder {plan.out_dir}: already holds experiments",
            ["add --resume to go on with it (finished experiments are kept), or choose another folder with --out"],
        )


def _prepare_folders(plan: CampaignPlan) -> None:
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    (plan.out_dir / "campaign.yaml").write_text(plan.source.read_text(encoding="utf-8"), encoding="utf-8")
    for exp in plan.experiments:
        folder = plan.experiment_dir(exp)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "experiment.json").is_file():
            write_json(folder / "experiment.json", {
                "key": exp.key, "index": exp.index, "kind": plan.kind, "base": str(plan.base_path),
                "parameters": exp.parameters, "overrides": exp.overrides, "needs_device": exp.needs_device,
            })


def start_local_cluster(workers: int | None, labels: list[str]) -> Future:
    """Start a LocalCluster of ``workers`` processes in the background (each with one thread and one unit of
    each device resource label, forked from a process that imported the run API once: :mod:`.warm`) and return
    the future of it: the cluster comes up while the campaign's experiments are being validated."""
    n = workers or max(1, min(4, os.cpu_count() or 1))

    def start():
        import dask
        from distributed import LocalCluster
        from distributed.utils import get_mp_context

        from testbed.orchestration.campaign.warm import MODULES

        config = {"distributed.scheduler.allowed-failures": 0, "distributed.worker.daemon": False,
                  "distributed.worker.multiprocessing-method": "forkserver",
                  # the statistical profiler samples the running experiment's stack every 10 ms: not here
                  "distributed.worker.profile.enabled": False,
                  # glibc returning every freed 64 KiB to the system (Dask's default for long-lived workers)
                  # slowed a run's pandas-heavy steps by up to ~40 % here: keep glibc's own threshold
                  "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                  # fewer wake-ups of the worker's event loop: each takes the GIL from the running experiment
                  "distributed.admin.tick.interval": "500ms", "distributed.admin.system-monitor.interval": "2s",
                  "distributed.worker.memory.monitor-interval": "1s"}
        with dask.config.set(config):
            get_mp_context().set_forkserver_preload(list(MODULES))  # before the forkserver starts
            return LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True,
                dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},  # no fixed port
                resources={label: 1 for label in labels} or None, silence_logs=logging.ERROR,
            )

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-cluster")
    future = pool.submit(start)
    pool.shutdown(wait=False)
    return future


def close_local_cluster(future: Future | None) -> None:
    """Close a cluster from :func:`start_local_cluster` (waiting for it to be up first)."""
    if future is None:
        return
    try:
        future.result().close()
    except Exception:  # it never came up: nothing to close  # noqa: BLE001
        pass


def connect(workers: int | None, address: str | None, resources: list[str], local: Future | None = None):
    """A Dask client: to the scheduler at ``address``, or to a LocalCluster (``local`` when one was started
    already, else a new one of ``workers`` processes). Returns (client, cluster to close or None)."""
    from distributed import Client

    if address is not None:
        if not ADDRESS.match(address):
            raise UserError(f"--dask {address}: not a scheduler address",
                            ["expected tcp://host:port (the address `dask scheduler` prints)"])
        try:
            return Client(address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False), None
        except (OSError, TimeoutError) as exc:
            raise UserError(
                f"--dask {address}: cannot reach the Dask scheduler",
                [f"no answer within {CONNECT_TIMEOUT_S:g} s ({type(exc).__name__}: {exc}); "
                 "is `dask scheduler` running there and the port open?"],
            ) from None
    cluster = (local or start_local_cluster(workers, resources)).result()
    return Client(cluster, set_as_default=False), cluster


def run_campaign(
    plan: CampaignPlan,
    *,
    workers: int | None = None,
    address: str | None = None,
    resume: bool = False,
    on_progress: Callable[[int, int, int, int, float | None], None] | None = None,
    local: Future | None = None,
    background_close: bool = False,
) -> CampaignOutcome:
    """Run every experiment not already done; ``on_progress(done, running, failed, total, eta_s)`` is called
    at least once a second. ``local``: a LocalCluster started already (:func:`start_local_cluster`), closed
    at the end (``background_close``: in a thread, :meth:`CampaignOutcome.wait_closed` waits for it, so the
    results are written while the worker processes stop)."""
    from distributed import KilledWorker

    try:
        check_campaign_dir(plan, resume)
    except UserError:
        close_local_cluster(local)
        raise
    outcome = CampaignOutcome()
    todo: list[Experiment] = []
    for exp in plan.experiments:
        result = read_result(plan.experiment_dir(exp))
        if result is not None and result.get("status") == "done":
            outcome.results[exp.key] = result
            outcome.skipped += 1
        else:
            todo.append(exp)
    total = len(plan.experiments)
    t0 = time.perf_counter()
    if not todo:
        close_local_cluster(local)
        _prepare_folders(plan)
        _report(on_progress, outcome, 0, total, 0.0)
        return outcome
    client, cluster = connect(workers, address, [plan.device_resource], local)  # nothing written before this
    try:
        _prepare_folders(plan)
        attempts: dict[str, int] = {}
        futures: dict[str, Any] = {}
        by_key = {e.key: e for e in todo}

        def submit(exp: Experiment) -> None:
            attempts[exp.key] = attempts.get(exp.key, 0) + 1
            device = plan.device_resource if exp.needs_device else None
            futures[exp.key] = client.submit(
                run_experiment, plan.kind, str(plan.base_path), exp.overrides, str(plan.experiment_dir(exp)), device,
                key=f"experiment-{exp.key}-{attempts[exp.key]}", pure=False,
                resources={device: 1} if device else None,
            )

        for exp in todo:
            submit(exp)
        last = 0.0
        while futures:
            for key, fut in list(futures.items()):
                if fut.status == "pending":
                    continue
                exp = by_key[key]
                del futures[key]
                if fut.status == "finished":
                    result = fut.result()
                elif fut.status == "error" and isinstance(fut.exception(), KilledWorker):
                    if attempts[key] < MAX_ATTEMPTS:
                        log.warning("experiment %s: its worker died; running it again elsewhere", key)
                        submit(exp)
                        continue
                    result = {"status": "failed", "kpis": {}, "verdict": None, "wall_s": None,
                              "reason": f"the worker running it died {attempts[key]} times "
                                        f"({fut.exception()})"}
                elif fut.status == "error":
                    exc = fut.exception()
                    result = {"status": "failed", "kpis": {}, "verdict": None, "wall_s": None,
                              "reason": f"{type(exc).__name__}: {exc}"}
                else:
                    result = {"status": "failed", "kpis": {}, "verdict": None, "wall_s": None,
                              "reason": f"the task was {fut.status} (contact with the scheduler lost?)"}
                result = result | {"key": key, "attempts": attempts[key], "parameters": exp.parameters}
                write_json(plan.experiment_dir(exp) / "result.json", result)
                for stale in plan.experiment_dir(exp).glob(".attempt-*"):  # left by a worker that died
                    shutil.rmtree(stale, ignore_errors=True)
                outcome.results[key] = result
                if result["status"] == "done":
                    outcome.done += 1
                else:
                    outcome.failed += 1
            now = time.perf_counter()
            if on_progress is not None and (now - last >= 0.5 or not futures):
                last = now
                running = _running(client, futures) if futures else 0
                finished = outcome.done + outcome.failed
                eta = None
                if finished:
                    eta = (now - t0) / finished * (len(todo) - finished)
                _report(on_progress, outcome, running, total, eta)
            if futures:
                time.sleep(0.1)
    finally:
        client.close()
        if cluster is not None and background_close:
            outcome.closing = threading.Thread(target=cluster.close, name="close-local-cluster")
            outcome.closing.start()
        elif cluster is not None:
            cluster.close()
    outcome.wall_s = time.perf_counter() - t0
    return outcome


def _running(client, futures: dict[str, Any]) -> int:
    """Experiments executing now: ours among the tasks the workers hold, at most one per worker thread (a worker
    holds a few more than it runs)."""
    try:
        processing = client.processing()
        threads = client.nthreads()
    except Exception:  # progress only: a busy scheduler must not fail the campaign  # noqa: BLE001
        return 0
    ours = {f.key for f in futures.values()}
    return sum(min(sum(1 for k in keys if k in ours), threads.get(w, 1)) for w, keys in processing.items())


def _report(on_progress, outcome: CampaignOutcome, running: int, total: int, eta: float | None) -> None:
    if on_progress is not None:
        on_progress(outcome.done + outcome.skipped, running, outcome.failed, total, eta)


def progress_printer(name: str, stream=None) -> tuple[Callable[..., None], Callable[[], None]]:
    """(callback, close): a tqdm bar on a terminal; otherwise a line every 5 s and at the end."""
    stream = stream or sys.stderr
    if stream.isatty():
        from tqdm import tqdm

        bar = tqdm(total=None, desc=name, unit="exp", file=stream, bar_format="{l_bar}{bar}| {n}/{total} {postfix}")

        def on_bar(done, running, failed, total, eta):
            bar.total = total
            bar.n = done + failed
            bar.set_postfix_str(f"done {done}, running {running}, failed {failed}, ETA {_eta(eta)}", refresh=True)

        return on_bar, bar.close
    state = {"last": -1e9, "line": ""}

    def on_line(done, running, failed, total, eta):
        line = f"{name}: {done}/{total} done, {running} running, {failed} failed, ETA {_eta(eta)}"
        state["line"] = line
        now = time.monotonic()
        if now - state["last"] >= 5.0:
            state["last"] = now
            print(line, file=stream, flush=True)

    def close():
        if state["line"]:
            print(state["line"], file=stream, flush=True)

    return on_line, close


def _eta(eta: float | None) -> str:
    if eta is None:
        return "?"
    eta = int(round(eta))
    return f"{eta // 60}m{eta % 60:02d}s" if eta >= 60 else f"{eta}s"
