"""Progress in a log and Ctrl-C: ``fpp run`` with stderr not a terminal prints a progress line every 5 s; an
interrupt (SIGINT, as Ctrl-C sends) stops the run with exit 130, says what was kept, and leaves a folder with
the KPIs of the steps done, an ``inconclusive`` verdict naming the interrupt, and a report ``fpp report`` can
write again. The run is the demo's market day over two days, so that it is still stepping when interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_progress_lines_then_ctrl_c_keeps_a_readable_folder(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed", "run", str(ROOT / "scenarios/demo.yaml"), "--out", str(out),
         "--set", "time.duration_h=48"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        # A shell's background job (CI under `nohup ... &`) inherits SIGINT ignored, and Python keeps it so:
        # give the run the default handling a terminal's Ctrl-C would meet.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = []
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("progress: step"):
                proc.send_signal(signal.SIGINT)
                break
        rest_out, rest_err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(lines) + rest_err
    assert any(x.startswith("progress: step") and "of 192" in x and "s left" in x for x in lines), err
    assert proc.returncode == 130, err
    assert "interrupted (Ctrl-C) after" in err and f"fpp report {out}" in err and "Traceback" not in err
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["status"] == "inconclusive" and "of 192 steps" in verdict["inconclusive"]
    kpis = json.loads((out / "kpis.json").read_text())
    assert 0 < kpis["steps"] < 192
    again = subprocess.run([sys.executable, "-m", "testbed", "report", str(out)], capture_output=True, text=True,
                           cwd=ROOT, timeout=120)
    assert again.returncode == 0, again.stderr
