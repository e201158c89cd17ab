"""A worker process killed under an experiment (SIGKILL, a real death: no fake): the experiment runs again once
on a live worker; killed again, it is marked failed with the reason, the campaign goes on, and --resume runs it
again to the end."""

import json
import os
import signal
import threading
import time

from distributed import Client

from testbed.orchestration.campaign.engine import run_campaign
from testbed.orchestration.campaign.plan import load_campaign


def _kill_worker_running(client: Client, key: str, started: os.PathLike, after: float, timeout_s: float = 60.0):
    """Wait until the task ``key`` is executing (its run folder written after ``after``), then SIGKILL its
    worker process. Returns the worker's address."""
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        where = [w for w, keys in client.processing().items() if key in keys]
        if where and os.path.isfile(started) and os.path.getmtime(started) > after:
            pid = client.run(os.getpid, workers=where)[where[0]]
            os.kill(pid, signal.SIGKILL)
            return where[0]
        time.sleep(0.05)
    raise AssertionError(f"{key} never started")


def test_worker_death_retries_once_then_fails_with_reason_and_resume_finishes(write_campaign, cluster, tmp_path):
    # 6 hours at 1 min: a few seconds of work, long enough to be killed in the middle
    path = write_campaign({"time.resolution_s": [60], "time.duration_h": [6]})
    plan = load_campaign(path, tmp_path / "out")
    exp = plan.experiments[0]
    started = plan.experiment_dir(exp) / "run" / "scenario.yaml"
    box = {}
    runner = threading.Thread(
        target=lambda: box.setdefault("outcome", run_campaign(plan, address=cluster.scheduler_address)))
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        t0 = time.time()
        runner.start()
        first = _kill_worker_running(client, f"experiment-{exp.key}-1", started, t0 - 1)
        t1 = time.time()
        second = _kill_worker_running(client, f"experiment-{exp.key}-2", started, t1)
        runner.join(timeout=120)
        client.wait_for_workers(2, timeout=60)
    assert first and second
    outcome = box["outcome"]
    assert (outcome.done, outcome.failed) == (0, 1)
    result = json.loads((plan.experiment_dir(exp) / "result.json").read_text())
    assert result["status"] == "failed" and result["attempts"] == 2
    assert result["reason"].startswith("the worker running it died 2 times")
    again = run_campaign(plan, address=cluster.scheduler_address, resume=True)
    assert (again.done, again.failed, again.skipped) == (1, 0, 0)
    result = json.loads((plan.experiment_dir(exp) / "result.json").read_text())
    assert result["status"] == "done" and result["attempts"] == 1 and result["kpis"]["steps"] == 360
