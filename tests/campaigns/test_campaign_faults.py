"""Real kills, no fakes. A worker process killed under an experiment (SIGKILL): the experiment runs again once
on a live worker; killed again, it is marked failed with the reason, and --resume runs it to the end. The
campaign itself killed (SIGKILL) after its first experiment and resumed: every experiment once, none lost."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
from distributed import Client

from testbed.cli import main
from testbed.orchestration.campaign.engine import run_campaign
from testbed.orchestration.campaign.plan import load_campaign


def _started_after(folder, after: float) -> bool:
    """An attempt of the experiment has begun writing its run after ``after``."""
    return any(p.stat().st_mtime > after for p in folder.glob(".attempt-*/run/scenario.yaml"))


def _kill_worker_running(client: Client, key: str, folder, after: float, timeout_s: float = 60.0):
    """Wait until the task ``key`` is executing (its attempt's run folder written after ``after``), then SIGKILL
    its worker process. Returns the worker's address."""
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        where = [w for w, keys in client.processing().items() if key in keys]
        if where and _started_after(folder, after):
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
    folder = plan.experiment_dir(exp)
    box = {}
    runner = threading.Thread(
        target=lambda: box.setdefault("outcome", run_campaign(plan, address=cluster.scheduler_address)))
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        t0 = time.time()
        runner.start()
        first = _kill_worker_running(client, f"experiment-{exp.key}-1", folder, t0 - 1)
        t1 = time.time()
        second = _kill_worker_running(client, f"experiment-{exp.key}-2", folder, t1)
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
    assert sorted(p.name for p in folder.iterdir()) == ["experiment.json", "result.json", "run"]  # nothing stale


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except OSError:
                continue
            todo += list(kids - out)
            out |= kids
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_campaign_killed_and_resumed_loses_and_duplicates_nothing(write_campaign, tmp_path, capsys):
    # four experiments of a few seconds on the campaign's own local cluster; SIGKILL the campaign as soon as
    # the first has finished
    path = write_campaign({"fleet.pv.share": [0.2, 0.4, 0.6, 0.8], "time.resolution_s": [60],
                           "time.duration_h": [6]})
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "testbed", "campaign", str(path), "--workers", "2", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t_end = time.monotonic() + 120
    while not list(out.glob("experiments/*/result.json")) and time.monotonic() < t_end:
        time.sleep(0.05)
    workers = _descendants(proc.pid)
    proc.kill()
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("experiments/*/result.json")}
    assert 1 <= len(finished) < 4
    # the killed campaign's workers go with it (they watch their parent): nothing is left running
    t_end = time.monotonic() + 20
    while any(_alive(p) for p in workers) and time.monotonic() < t_end:
        time.sleep(0.1)
    left = [p for p in workers if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"worker processes outlived the killed campaign: {left}"
    assert main(["campaign", str(path), "--resume", "--workers", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{4 - len(finished)} run, {len(finished)} already done, 0 failed" in printed
    summary = pd.read_parquet(out / "summary.parquet")
    assert len(summary) == 4 and summary["experiment"].is_unique and set(summary["status"]) == {"done"}
    assert sorted(summary["fleet.pv.share"]) == [0.2, 0.4, 0.6, 0.8]
    assert {k: (out / "experiments" / k / "result.json").stat().st_mtime_ns for k in finished} == finished
    for folder in (out / "experiments").iterdir():
        assert sorted(p.name for p in folder.iterdir()) == ["experiment.json", "result.json", "run"]
