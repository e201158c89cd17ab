"""Lateness statistics, checked against hand-computed values."""

from __future__ import annotations

import pytest

from testbed.domain.lateness import lateness_stats


def test_hand_computed_percentiles_and_missed_deadlines():
    # Period 50 ms; lateness 0, 10, 20, 30, 60 ms (one early start counts as 0).
    deadlines = [0.00, 0.05, 0.10, 0.15, 0.20, 0.25]
    actual = [0.00, 0.06, 0.12, 0.18, 0.26, 0.249]
    s = lateness_stats(deadlines, actual, 0.05)
    # sorted lateness: 0, 0, 0.01, 0.02, 0.03, 0.06 -> median (0.01 + 0.02) / 2 = 0.015;
    # p99 by linear interpolation at rank 0.99 × 5 = 4.95: 0.03 + 0.95 × 0.03 = 0.0585.
    assert s.ticks == 6
    assert s.p50_s == pytest.approx(0.015)
    assert s.p99_s == pytest.approx(0.0585)
    assert s.max_s == pytest.approx(0.06)
    assert s.missed == 1  # only the 60 ms late tick is at least one period late


def test_empty_and_bad_input():
    assert lateness_stats([], [], 0.05).ticks == 0
    with pytest.raises(ValueError, match="deadlines"):
        lateness_stats([0.0], [], 0.05)
    with pytest.raises(ValueError, match="period"):
        lateness_stats([0.0], [0.0], 0.0)


def test_sample_store_streams_chunks_and_keeps_statistics(tmp_path):
    import pyarrow.parquet as pq

    from hil.link import Sample
    from hil.samples import SampleStore

    # 25 samples of device a (lateness 0..24 ms, every 5th invalid) in chunks of 10 rows.
    store = SampleStore(tmp_path / "s.parquet", chunk_rows=10)
    for i in range(25):
        late = i / 1000
        store.add("a", [Sample(float(i), 0.0, late, late, 1.0, 0.0, None, i % 5 != 0, None if i % 5 else "timeout")])
    store.close()
    table = pq.read_table(tmp_path / "s.parquet").to_pandas()
    assert len(table) == 25 and table["fault"].tolist().count("timeout") == 5
    assert store.rows() == []  # streamed, not kept
    s = store.stats(0.05, "a")
    assert s.ticks == 25 and s.p50_s == pytest.approx(0.012) and s.max_s == pytest.approx(0.024)
    assert store.invalid["a"] == 5 and s.missed == 0
