"""A disk cache for slow derived data: SimBench grids and profiles converted once, power-flow solver choices.

Where: ``$FPP_CACHE_DIR`` when set (tests point it at a temporary folder), else ``$XDG_CACHE_HOME/fpp-testbed``,
else ``~/.cache/fpp-testbed``. Deleting the folder is always safe: entries are rebuilt when next needed.

An entry is one file ``<root>/<kind>/<name>-<digest of the key>.pickle``. The key names everything the value
depends on (library versions, a fingerprint of the source that computes it), so another version of the code
or of SimBench reads and writes its own entry. The file starts with a header line holding the key again and
the SHA-256 and length of the payload (a pickle); an entry whose header, key, digest or pickle does not check
out is treated as absent, and the caller rebuilds and rewrites it.

Parallel runs: an entry is written to a temporary file in the same folder and then renamed over the entry
(``os.replace``, atomic on POSIX and Windows), so a reader sees a whole old file or a whole new one, never a
part. Two processes that miss at once both build the value and both rename; the last rename wins, and both
results are equal. A cache that cannot be written (read-only home, full disk) costs time, not the run: it is
logged, not raised.

Trust: loading a pickle runs code, so the cache folder must be writable only by you, as your home is. Do not
point ``FPP_CACHE_DIR`` at a folder that others can write.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import pickle
import re
import sys
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV_VAR = "FPP_CACHE_DIR"
_MAGIC = b"fpp-testbed cache 1\n"


def cache_root() -> Path:
    """The cache folder (see the module docstring); not created here."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "fpp-testbed"


def entry_path(kind: str, name: str, key: dict[str, Any]) -> Path:
    """The file of the entry ``name`` of ``kind`` under ``key`` (a JSON-serialisable dict)."""
    digest = hashlib.sha256(_key_text(key).encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80]
    return cache_root() / kind / f"{safe}-{digest}.pickle"


def load(kind: str, name: str, key: dict[str, Any]) -> Any | None:
    """The cached value, or ``None`` when the entry is absent, corrupt or written under another key."""
    path = entry_path(kind, name, key)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.info("cache entry %s unreadable (%s); rebuilding", path, exc)
        return None
    payload = _payload(data, key)
    if isinstance(payload, str):
        log.warning("cache entry %s %s; rebuilding it", path, payload)
        return None
    try:
        return pickle.loads(payload)
    except Exception as exc:  # a pickle of classes that changed shape: any error means "rebuild"
        log.warning("cache entry %s does not unpickle (%s: %s); rebuilding it", path, type(exc).__name__, exc)
        return None


def store(kind: str, name: str, key: dict[str, Any], value: Any) -> Path | None:
    """Write ``value`` atomically as the entry; returns its path, or ``None`` when the cache is not writable."""
    if value is None:
        raise ValueError("the cache does not store None (it means a miss)")
    path = entry_path(kind, name, key)
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    header = json.dumps(
        {"key": key, "sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}, sort_keys=True
    ).encode()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + header + b"\n" + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        log.warning("cache entry %s not written (%s); the next run computes it again", path, exc)
        return None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def get_or_build[T](kind: str, name: str, key: dict[str, Any], build: Callable[[], T]) -> T:
    """The cached value under ``key``, else ``build()``, stored for the next caller."""
    value = load(kind, name, key)
    if value is None:
        value = build()
        store(kind, name, key, value)
    return value


@functools.cache
def source_fingerprint(*modules: str) -> str:
    """SHA-256 (first 16 hex digits) of the source files of ``modules``, found without importing them.

    Part of a key, so that an entry computed by other code is not reused after an edit of that code.
    """
    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"no source for module {name}")
        h.update(name.encode() + b"\0" + Path(spec.origin).read_bytes() + b"\0")
    return h.hexdigest()[:16]


@functools.cache
def versions(*distributions: str) -> dict[str, str]:
    """Installed versions of ``distributions`` and the Python version, for a key."""
    out = {"python": f"{sys.version_info[0]}.{sys.version_info[1]}"}
    for dist in distributions:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def _key_text(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def _payload(data: bytes, key: dict[str, Any]) -> bytes | str:
    """The payload of an entry's bytes, or a string saying what is wrong with them."""
    if not data.startswith(_MAGIC):
        return "has no cache header"
    head, sep, payload = data[len(_MAGIC) :].partition(b"\n")
    if not sep:
        return "is truncated in its header"
    try:
        header = json.loads(head)
    except ValueError:
        return "has an unreadable header"
    if not isinstance(header, dict) or _key_text(header.get("key", {})) != _key_text(key):
        return "was written under another key"
    if header.get("bytes") != len(payload) or header.get("sha256") != hashlib.sha256(payload).hexdigest():
        return "fails its checksum (truncated or altered)"
    return payload
