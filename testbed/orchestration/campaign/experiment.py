"""One experiment, as a Dask worker runs it: the base with its overrides through the run API (``testbed.run``)
or the service test runner, into the experiment's folder; what it gives back is data, never an exception.

A failure of the experiment itself (a user mistake found late, a device fault, a bug) comes back as
``status: failed`` with its reason, so it never stops the other experiments. An experiment with a device in
the loop holds a cluster-wide lock named after the device's resource label while it runs: never two at once
on the same device, even on a cluster where several workers carry the label.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from testbed.domain.errors import Fault, UserError


def _scalar_kpis(kpis: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The KPIs as one flat mapping of dotted paths to numbers, strings and booleans (lists are left out)."""
    out: dict[str, Any] = {}
    for k, v in kpis.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= _scalar_kpis(v, name + ".")
        elif v is None or isinstance(v, int | float | str | bool):
            out[name] = v
    return out


def _run_scenario(base: Path, overrides: dict[str, Any], run_dir: Path) -> tuple[dict[str, Any], str]:
    from testbed.orchestration.api import run

    result = run(base, overrides=overrides, out=run_dir, progress=False)
    if result.fault is not None:  # the run ended early (a device, a lateness budget): its folder is kept
        raise result.fault
    return _scalar_kpis(result.kpis), result.verdict.status


def _run_test(base: Path, overrides: dict[str, Any], run_dir: Path) -> tuple[dict[str, Any], str]:
    import yaml

    from testbed.domain.scenario.overrides import apply_overrides
    from testbed.domain.services.testfile import build_signal, parse_test
    from testbed.orchestration.service_test import run_service_test, write_results

    data = apply_overrides(yaml.safe_load(base.read_text(encoding="utf-8")), overrides)
    test = parse_test(yaml.safe_dump(data, sort_keys=False), str(base))
    recorded = None
    if test.signal.kind == "recorded":
        from simulators.frequency.recorded import read_frequency_csv

        recorded = read_frequency_csv(base.parent / test.signal.file)
    result = run_service_test(test, build_signal(test, recorded), real_time=test.device.kind == "hil")
    write_results(result, run_dir)
    kpis: dict[str, Any] = {c.name: c.figure for c in result.verdict.criteria}
    kpis["wall_s"] = round(result.wall_s, 3)
    return kpis, result.verdict.status


def _device_lock(resource: str | None):
    if resource is None:
        return contextlib.nullcontext()
    from distributed import Lock

    return Lock(f"fpp-device-{resource}")


def run_experiment(kind: str, base: str, overrides: dict[str, Any], folder: str,
                   device_resource: str | None = None) -> dict[str, Any]:
    """Run one experiment into ``folder/run`` (replacing what a failed or interrupted attempt left there) and
    return ``{status, reason, kpis, verdict, wall_s, started_unix, finished_unix}``."""
    t0 = time.perf_counter()
    attempt = Path(folder) / f".attempt-{uuid.uuid4().hex[:12]}"
    with _device_lock(device_resource):
        started = time.time()  # wall-clock times (seconds since the epoch) while the device was held
        result = _attempt(kind, Path(base), overrides, attempt / "run")
        finished = time.time()
    _keep(attempt / "run", Path(folder) / "run")
    return result | {"wall_s": time.perf_counter() - t0, "started_unix": started, "finished_unix": finished}


def _keep(written: Path, final: Path) -> None:
    """Put this attempt's run folder in place of an earlier one. Each attempt writes into a folder of its own
    first: on a remote cluster a campaign that was killed may leave a task finishing the same experiment
    while the resumed campaign runs it again, and two runs must never write into one folder. Both are the same
    experiment (same content, same seed): when the other one got there at the same moment, its folder stays."""
    if written.exists():
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        try:
            written.rename(final)
        except OSError:
            shutil.rmtree(written, ignore_errors=True)
    shutil.rmtree(written.parent, ignore_errors=True)


def _attempt(kind: str, base: Path, overrides: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    try:
        runner = _run_scenario if kind == "scenario" else _run_test
        kpis, verdict = runner(base, overrides, run_dir)
    except (UserError, Fault) as exc:
        return {"status": "failed", "reason": exc.render().replace("\n", " "), "kpis": {}, "verdict": None}
    except Exception as exc:  # a bug or an unexpected fault: the experiment fails, the campaign goes on
        last = traceback.format_exception_only(exc)[-1].strip()
        return {"status": "failed", "reason": f"{type(exc).__name__} in the experiment: {last}", "kpis": {},
                "verdict": None, "traceback": traceback.format_exc()}
    return {"status": "done", "reason": None, "kpis": kpis, "verdict": verdict}
