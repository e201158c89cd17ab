"""MQTT broker addresses and the brokers the testbed starts itself.

- :func:`parse_broker_url`: ``mqtt://host:port`` or ``mqtts://host:port`` (TLS) into a :class:`BrokerAddress`.
- :class:`MosquittoBroker`: a Mosquitto process with a generated config (one listener on 127.0.0.1,
  anonymous or password file + ACL), stoppable and restartable on the same port.
- :class:`EmbeddedBroker`: the pure-Python ``amqtt`` broker inside the current event loop, for one machine
  with nothing installed (``fpp platform`` with no ``--broker``).
- :func:`start_test_broker`: Mosquitto where installed, else ``amqtt`` in a child process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from testbed.domain.errors import UserError

log = logging.getLogger(__name__)
MOSQUITTO = "/usr/sbin/mosquitto"


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    u = urlparse(url)
    problems = []
    if u.scheme not in ("mqtt", "mqtts"):
        problems.append(f"scheme {u.scheme!r}: expected mqtt:// or mqtts://")
    if not u.hostname:
        problems.append("no host name")
    try:
        port = u.port or (8883 if u.scheme == "mqtts" else 1883)
    except ValueError as exc:
        problems.append(f"port: {exc}")
        port = 0
    if problems:
        raise UserError(f"broker URL {url!r} is invalid", problems)
    return BrokerAddress(u.hostname or "", port, tls=u.scheme == "mqtts")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerExited(RuntimeError):
    """The broker process ended while it was starting (its port taken by another process, a bad config)."""


def wait_for_port(host: str, port: int, timeout_s: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """Return once something accepts connections on ``host:port``. With ``proc`` (the process that should listen
    there): raise :class:`BrokerExited` if it ends first, or within a moment after the port answers (then another
    process answered: a free port found earlier can be taken by someone else before the broker binds it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise BrokerExited(f"the process meant to listen on {host}:{port} ended (exit {proc.returncode})")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s} s") from None
            time.sleep(0.05)
    if proc is not None:
        time.sleep(0.1)  # a broker that could not bind its port exits at once
        if proc.poll() is not None:
            raise BrokerExited(f"{host}:{port} answered, but the process meant to listen there ended")


def mosquitto_available() -> bool:
    return Path(MOSQUITTO).exists() or shutil.which("mosquitto") is not None


class MosquittoBroker:
    """A Mosquitto process on 127.0.0.1; ``stop``/``start`` again keeps the port (for restart tests)."""

    def __init__(
        self,
        port: int | None = None,
        *,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        workdir: Path | None = None,
        max_connections: int = -1,
        tls_files: tuple[Path, Path, Path] | None = None,
    ) -> None:
        self._own_port = port is None  # a port this object chose: another can be chosen if it was taken meanwhile
        self.port = port or free_port()
        self.password_file = password_file
        self.acl_file = acl_file
        self.max_connections = max_connections
        self.tls_files = tls_files
        """``(CA file, server certificate, server key)``: the listener speaks TLS only."""
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="fpp-mosquitto-")
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.proc: subprocess.Popen | None = None
        self.address = BrokerAddress("127.0.0.1", self.port, tls=tls_files is not None)

    def _config(self) -> Path:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            f"max_connections {self.max_connections}",
            "max_queued_messages 100000",
            "set_tcp_nodelay true",  # small request/reply packets: no Nagle delay (measured: p50 42 -> 1 ms)
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            # keep our own user: started as root, mosquitto would switch to "mosquitto" and could not
            # read the 0600 password file we wrote (no effect when not root)
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
        ]
        if self.password_file:
            # as `fpp platform acl` writes it: a connection's client id is its user name
            lines += ["allow_anonymous false", f"password_file {self.password_file}", "use_username_as_clientid true"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file:
            lines.append(f"acl_file {self.acl_file}")
        if self.tls_files:
            ca, cert, key = self.tls_files
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}", "tls_version tlsv1.2"]
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> MosquittoBroker:
        exe = MOSQUITTO if Path(MOSQUITTO).exists() else shutil.which("mosquitto")
        if exe is None:
            raise UserError("mosquitto is not installed", [f"looked for {MOSQUITTO} and on PATH"])
        for attempt in range(3):
            with open(self.workdir / "mosquitto.log", "ab") as log_file:
                self.proc = subprocess.Popen(
                    [exe, "-c", str(self._config())], stdout=subprocess.DEVNULL, stderr=log_file
                )
            try:
                wait_for_port("127.0.0.1", self.port, proc=self.proc)
                return self
            except BrokerExited:
                self.stop()
                if not self._own_port or attempt == 2:
                    break
                log.warning("mosquitto could not listen on port %d (taken meanwhile?); trying another", self.port)
                self.port = free_port()
                self.address = BrokerAddress("127.0.0.1", self.port, tls=self.tls_files is not None)
            except TimeoutError:
                self.stop()
                break
        log_text = (self.workdir / "mosquitto.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"mosquitto did not start on port {self.port}: {log_text}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def amqtt_config(host: str, port: int) -> dict:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class EmbeddedBroker:
    """The ``amqtt`` broker in the running event loop (anonymous, one listener)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.address = BrokerAddress(host, port)
        self._broker = None

    async def start(self) -> EmbeddedBroker:
        from amqtt.broker import Broker

        self._broker = Broker(amqtt_config(self.address.host, self.address.port))
        await self._broker.start()
        return self

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None

    async def __aenter__(self) -> EmbeddedBroker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class EmbeddedBrokerProcess:
    """``amqtt`` in a child process, with the same start/stop/close interface as :class:`MosquittoBroker`."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.address = BrokerAddress("127.0.0.1", self.port)
        self.proc: subprocess.Popen | None = None

    def start(self) -> EmbeddedBrokerProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "testbed.platform.broker", str(self.port)])
        try:
            wait_for_port("127.0.0.1", self.port, timeout_s=30, proc=self.proc)
        except (BrokerExited, TimeoutError):
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    close = stop

    def __enter__(self) -> EmbeddedBrokerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_test_broker(**kwargs: object) -> MosquittoBroker | EmbeddedBrokerProcess:
    """A fresh broker on a free loopback port: Mosquitto where installed, else ``amqtt`` (anonymous only)."""
    if mosquitto_available():
        return MosquittoBroker(**kwargs).start()  # type: ignore[arg-type]
    if kwargs.get("password_file") or kwargs.get("acl_file"):
        raise UserError("authenticated test broker needs mosquitto", ["mosquitto is not installed"])
    return EmbeddedBrokerProcess().start()


async def _serve_embedded(port: int) -> None:
    async with EmbeddedBroker("127.0.0.1", port):
        await asyncio.Event().wait()


if __name__ == "__main__":  # used by EmbeddedBrokerProcess
    try:
        asyncio.run(_serve_embedded(int(sys.argv[1])))
    except KeyboardInterrupt:
        pass
