"""The disk cache itself (simulators/cache.py): where it lives, what counts as a miss, atomic writes."""

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from simulators import cache

KEY = {"code": "x", "simbench": "1.6.3"}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "explicit"
    monkeypatch.delenv(cache.ENV_VAR)
    assert cache.cache_root() == tmp_path / "xdg" / "fpp-testbed"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "fpp-testbed"


def test_round_trip_is_exact_and_each_key_has_its_own_entry(cache_dir):
    value = {"a": np.arange(10, dtype=float) / 3.0}
    path = cache.store("kind", "name", KEY, value)
    assert path is not None and path.parent == cache_dir / "kind"
    back = cache.load("kind", "name", KEY)
    assert back["a"].tobytes() == value["a"].tobytes()  # bit for bit
    other = {**KEY, "simbench": "1.6.4"}  # another SimBench version: another entry, a miss
    assert cache.entry_path("kind", "name", other) != path
    assert cache.load("kind", "name", other) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated (a crash while writing without the atomic rename)
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),  # one bit flipped in the payload
        lambda b: b"garbage",  # no header
        lambda b: b.replace(b'"1.6.3"', b'"1.6.0"', 1),  # header written under another key (a stale entry)
    ],
    ids=["truncated", "bit-flip", "no-header", "stale-key"],
)
def test_corrupt_or_stale_entry_is_a_miss_and_is_rebuilt(cache_dir, damage):
    path = cache.store("kind", "name", KEY, [1, 2, 3])
    path.write_bytes(damage(path.read_bytes()))
    assert cache.load("kind", "name", KEY) is None
    calls = []
    rebuilt = cache.get_or_build("kind", "name", KEY, lambda: calls.append(1) or [1, 2, 3])
    assert rebuilt == [1, 2, 3] and calls == [1]
    assert cache.load("kind", "name", KEY) == [1, 2, 3]  # rewritten whole


def test_unwritable_cache_costs_time_not_the_run(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(cache.ENV_VAR, str(blocker / "cache"))  # cannot be created
    assert cache.store("kind", "name", KEY, [1]) is None
    assert cache.get_or_build("kind", "name", KEY, lambda: [2]) == [2]


def test_source_fingerprint_changes_with_the_code(tmp_path, monkeypatch):
    mod = tmp_path / "fp_probe_mod.py"
    mod.write_text("A = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = cache.source_fingerprint.__wrapped__("fp_probe_mod")
    mod.write_text("A = 2\n")
    assert cache.source_fingerprint.__wrapped__("fp_probe_mod") != first


def _writer(root: str, seed: int, start, rounds: int, out) -> None:
    os.environ[cache.ENV_VAR] = root
    value = np.full(200_000, float(seed))  # 1.6 MB: many write() calls per entry
    start.wait()
    bad = 0
    for _ in range(rounds):
        cache.store("kind", "shared", KEY, value)
        got = cache.load("kind", "shared", KEY)
        # Whatever a reader sees is one writer's whole value, never a mix or a part.
        if got is None or not (got == got[0]).all() or got[0] not in (1.0, 2.0, 3.0, 4.0):
            bad += 1
    out.put(bad)


def test_processes_filling_one_entry_at_once_all_succeed(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), seed, start, 15, out)) for seed in (1, 2, 3, 4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert [out.get(timeout=5) for _ in procs] == [0, 0, 0, 0]
    assert list(Path(tmp_path, "kind").glob("*.tmp")) == []  # no temporary file left behind
