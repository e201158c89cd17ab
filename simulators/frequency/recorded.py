"""Reading a recorded frequency series from a CSV file (adapter: the file I/O of the pure signal module).

The file has a header with ``t_s`` (seconds, ascending) and ``f_hz`` (Hz) columns; other columns are ignored.
Every problem is reported with its line.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from testbed.domain.errors import UserError


def read_frequency_csv(path: str | Path) -> tuple[list[float], list[float]]:
    """(times [s] from 0, frequencies [Hz]) of the file."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise UserError(f"{path}: cannot read the recorded frequency", [str(exc)]) from None
    if not rows or not {"t_s", "f_hz"} <= set(rows[0]):
        raise UserError(f"{path}: a recorded frequency needs columns t_s and f_hz")
    problems, ts, fs = [], [], []
    for i, row in enumerate(rows, start=2):
        try:
            t, f = float(row["t_s"]), float(row["f_hz"])
        except (TypeError, ValueError):
            problems.append(f"line {i}: t_s {row.get('t_s')!r}, f_hz {row.get('f_hz')!r} are not numbers")
            continue
        if not (math.isfinite(t) and math.isfinite(f) and f > 0):
            problems.append(f"line {i}: t_s {t}, f_hz {f}: need finite values and f_hz > 0")
        elif ts and t <= ts[-1]:
            problems.append(f"line {i}: t_s {t} does not increase")
        else:
            ts.append(t)
            fs.append(f)
    if len(ts) < 2 and not problems:
        problems.append("fewer than two samples")
    if problems:
        raise UserError(f"{path}: {len(problems)} problem(s) in the recorded frequency", problems[:20])
    return [t - ts[0] for t in ts], fs
