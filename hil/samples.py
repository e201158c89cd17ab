"""Where the samples of a HIL run go: lateness kept compactly for the statistics, rows streamed to a Parquet
file in chunks (or kept in memory when no file is given), so a long real-time run does not grow without bound.
"""

from __future__ import annotations

from array import array
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hil.link import Sample
from testbed.domain.lateness import LatenessStats, stats_from_lateness

SCHEMA = pa.schema(
    [
        ("device", pa.string()),
        ("t_wall", pa.float64()),
        ("lateness_s", pa.float64()),
        ("p_kw", pa.float64()),
        ("q_kvar", pa.float64()),
        ("soc", pa.float64()),
        ("valid", pa.bool_()),
        ("fault", pa.string()),
        ("f_hz", pa.float64()),
        ("vm_pu", pa.float64()),
        ("p_set_kw", pa.float64()),
    ]
)


class SampleStore:
    """Samples of every device. ``path`` None keeps rows in memory (tests, short runs)."""

    def __init__(self, path: str | Path | None = None, *, chunk_rows: int = 20000) -> None:
        self.path = Path(path) if path is not None else None
        self.chunk_rows = chunk_rows
        self._pending: list[dict] = []
        self._kept: list[dict] = []
        self._writer: pq.ParquetWriter | None = None
        self.lateness: dict[str, array] = {}
        self.invalid: dict[str, int] = {}

    def add(self, device: str, samples: list[Sample]) -> None:
        late = self.lateness.setdefault(device, array("d"))
        self.invalid.setdefault(device, 0)
        for s in samples:
            late.append(s.lateness_s)
            self.invalid[device] += not s.valid
            row = {
                "device": device,
                "t_wall": s.t_wall,
                "lateness_s": s.lateness_s,
                "p_kw": s.p_kw,
                "q_kvar": s.q_kvar,
                "soc": s.soc,
                "valid": s.valid,
                "fault": s.fault,
                "f_hz": s.f_hz,
                "vm_pu": s.vm_pu,
                "p_set_kw": s.p_set_kw,
            }
            (self._pending if self.path is not None else self._kept).append(row)
        if len(self._pending) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if self.path is None or not self._pending:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, SCHEMA, compression="zstd")
        self._writer.write_table(pa.Table.from_pylist(self._pending, schema=SCHEMA))
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def rows(self) -> list[dict]:
        """Rows kept in memory (empty when they are streamed to ``path``)."""
        return list(self._kept)

    def stats(self, period_s: float, device: str | None = None) -> LatenessStats:
        if device is not None:
            return stats_from_lateness(self.lateness.get(device, array("d")), period_s)
        merged = array("d")
        for late in self.lateness.values():
            merged.extend(late)
        return stats_from_lateness(merged, period_s)

    def count(self, device: str) -> int:
        return len(self.lateness.get(device, ()))
