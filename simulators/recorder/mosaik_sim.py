"""mosaik recorder: writes ``timeseries.parquet`` of a run and accumulates its KPIs.

One ``Recorder`` entity takes any attributes. Column names are ``<attr>/<element id>``:

- an array value takes its element ids from the ``series`` model parameter (``{attr: [ids]}``);
- a dict value (``{id: value}``) takes its keys;
- a scalar value is named ``<attr>`` (or ``<attr>/<source entity>`` when several sources send it).

Rows are buffered and written in chunks, so a year-long run does not hold its whole time series in memory.
The KPIs (see :mod:`testbed.domain.kpis`) are accumulated at every step; when the run ends they go into the
``kpi_sink`` mapping given to ``init`` (in-process), or are read with the extra method ``kpis()``. The runner
writes ``kpis.json`` once, with every part's section.
"""

from __future__ import annotations

import logging
import sys
import time as wallclock
from datetime import datetime, timedelta
from pathlib import Path

import mosaik_api_v3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from testbed.domain.kpis import KpiAccumulator

log = logging.getLogger(__name__)

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {"Recorder": {"public": True, "params": ["series"], "attrs": [], "any_inputs": True}},
    "extra_methods": ["kpis"],
}
CHUNK_ROWS = 2048
PROGRESS_EVERY_S = 5.0  # a progress line this often when stderr is not a terminal


class RecorderSimulator(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.eid = "recorder"
        self.columns: list[str] | None = None
        self.rows: list[np.ndarray] = []
        self.times: list[datetime] = []
        self.writer: pq.ParquetWriter | None = None
        self.kpi: KpiAccumulator | None = None
        self.bar = None

    def init(
        self,
        sid,
        time_resolution=1.0,
        out_dir: str = "results",
        start: str = "",
        resolution_s: int = 1,
        n_steps: int = 0,
        v_min_pu: float = 0.9,
        v_max_pu: float = 1.1,
        prosumer_ids: tuple[str, ...] = (),
        write_timeseries: bool = True,
        progress: bool = True,
        kpi_sink: dict | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.start = datetime.fromisoformat(start)
        self.resolution_s = resolution_s
        self.n_steps = n_steps
        self.write_timeseries = write_timeseries
        self.kpi_sink = kpi_sink
        self.kpi = KpiAccumulator(
            dt_h=resolution_s / 3600.0, v_min_pu=v_min_pu, v_max_pu=v_max_pu, prosumer_ids=tuple(prosumer_ids)
        )
        # On a terminal a bar, shown once a run has taken more than 2 s; otherwise (a CI log, a file) one line
        # every PROGRESS_EVERY_S seconds.
        tty = sys.stderr.isatty()
        self.bar = tqdm(total=n_steps, unit="step", delay=2.0, disable=not progress or not tty, leave=False)
        self.lines = progress and not tty
        self.t0 = self.last_line = wallclock.monotonic()
        self.done = 0
        return self.meta

    def _progress_line(self) -> None:
        now = wallclock.monotonic()
        if not self.lines or now - self.last_line < PROGRESS_EVERY_S or self.done >= self.n_steps:
            return
        self.last_line = now
        elapsed = now - self.t0
        left = elapsed / self.done * (self.n_steps - self.done) if self.done else float("nan")
        print(f"progress: step {self.done} of {self.n_steps} ({100 * self.done / max(self.n_steps, 1):.0f} %), "
              f"{elapsed:.0f} s, about {left:.0f} s left", file=sys.stderr, flush=True)

    def create(self, num, model, series: dict[str, list[str]] | None = None):
        if num != 1:
            raise ValueError("a RecorderSimulator holds exactly one Recorder entity")
        self.series = {k: list(v) for k, v in (series or {}).items()}
        return [{"eid": self.eid, "type": model}]

    def _flatten(self, inputs: dict) -> tuple[list[str], list[float], dict]:
        names: list[str] = []
        values: list[float] = []
        merged: dict = {}
        for attr in sorted(inputs):
            sources = inputs[attr]
            for src in sorted(sources):
                value = sources[src]
                merged.setdefault(attr, value)
                if isinstance(value, dict):
                    for key in value:
                        names.append(f"{attr}/{key}")
                        values.append(float(value[key]))
                elif isinstance(value, (np.ndarray, list, tuple)):
                    ids = self.series.get(attr)
                    arr = np.asarray(value, dtype=float)
                    if ids is None or len(ids) != len(arr):
                        raise ValueError(f"recorder: no element ids of the right length for array attribute {attr!r}")
                    names.extend(f"{attr}/{i}" for i in ids)
                    values.extend(arr.tolist())
                else:
                    names.append(attr if len(sources) == 1 else f"{attr}/{src}")
                    values.append(float(value))
        return names, values, merged

    def step(self, time, inputs, max_advance):
        names, values, merged = self._flatten(inputs.get(self.eid, {}))
        self.kpi.update(merged)
        if self.write_timeseries:
            if self.columns is None:
                self.columns = names
            elif names != self.columns:
                raise ValueError(f"recorder: the columns changed at step {time}")
            self.rows.append(np.asarray(values, dtype=float))
            self.times.append(self.start + timedelta(seconds=time * self.resolution_s))
            if len(self.rows) >= CHUNK_ROWS:
                self._flush()
        self.bar.update(1)
        self.done += 1
        self._progress_line()
        return time + 1

    def _flush(self) -> None:
        if not self.rows:
            return
        block = np.vstack(self.rows)
        arrays = [pa.array(self.times, type=pa.timestamp("s"))]
        arrays += [pa.array(block[:, j]) for j in range(block.shape[1])]
        table = pa.Table.from_arrays(arrays, names=["time", *self.columns])
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.out_dir / "timeseries.parquet", table.schema, compression="zstd")
        self.writer.write_table(table)
        self.rows.clear()
        self.times.clear()

    def kpis(self) -> dict:
        return self.kpi.result()

    def get_data(self, outputs):
        return {}

    def finalize(self):
        if self.write_timeseries:
            self._flush()
            if self.writer is not None:
                self.writer.close()
        self.bar.close()
        if self.kpi_sink is not None:
            self.kpi_sink["kpis"] = self.kpi.result()
