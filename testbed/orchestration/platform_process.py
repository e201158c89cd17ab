"""Start ``fpp platform`` as a separate process (the runner and tests do), and stop it again."""

from __future__ import annotations

import json
import logging
import select
import subprocess
import sys
import tempfile
from pathlib import Path

from testbed.domain.errors import UserError
from testbed.domain.market.mechanisms import DEFAULT_MECHANISM
from testbed.domain.prosumer import Tariff
from testbed.platform.broker import (
    BrokerAddress,
    MosquittoBroker,
    free_port,
    mosquitto_available,
    parse_broker_url,
)

log = logging.getLogger(__name__)
DEFAULT_TARIFF = Tariff(import_price_per_kwh=0.30, export_price_per_kwh=0.08)


class PlatformProcess:
    """``python -m testbed platform ...`` with a prosumer registry; ``tariff`` None for an islanded community.

    Without ``broker_url`` it brings its own broker on a free loopback port: ``local_broker="auto"`` (default)
    starts Mosquitto when it is installed (about 4x faster per market interval than amqtt, measured in
    BENCHMARKS.md) and the platform's embedded amqtt broker otherwise; ``"amqtt"`` always the embedded one.
    ``broker_name`` says which ran: ``mosquitto``, ``amqtt`` or ``external``.

    ``address`` is where clients connect. The process is stopped with SIGTERM (then killed) on exit.
    """

    def __init__(
        self,
        prosumers: list[dict],
        *,
        ledger_url: str,
        broker_url: str | None = None,
        mechanism: str = DEFAULT_MECHANISM,
        interval_s: float = 900.0,
        tariff: Tariff | None = DEFAULT_TARIFF,
        ledger_prefix: str = "fpp_",
        credentials: Path | None = None,
        workdir: Path | None = None,
        extra_args: list[str] | None = None,
        local_broker: str = "auto",
    ) -> None:
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="fpp-platform-")
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.workdir.mkdir(parents=True, exist_ok=True)
        registry = self.workdir / "prosumers.json"
        registry.write_text(json.dumps({"prosumers": prosumers}))
        self.mosquitto: MosquittoBroker | None = None
        if local_broker not in ("auto", "amqtt"):
            raise ValueError(f"local_broker must be 'auto' or 'amqtt', not {local_broker!r}")
        if broker_url:
            self.broker_name = "external"
            self.address = parse_broker_url(broker_url)
            where = ["--broker", broker_url]
        elif local_broker == "auto" and mosquitto_available():
            self.broker_name = "mosquitto"
            self.mosquitto = MosquittoBroker(workdir=self.workdir / "mosquitto")
            self.address = self.mosquitto.address
            where = ["--broker", self.address.url]
        else:
            self.broker_name = "amqtt"
            self.address = BrokerAddress("127.0.0.1", free_port())
            where = ["--listen-port", str(self.address.port)]
        prices = (
            ["--islanded"]
            if tariff is None
            else [
                "--import-price-per-kwh", repr(tariff.import_price_per_kwh),
                "--export-price-per-kwh", repr(tariff.export_price_per_kwh),
            ]
        )
        self.args = [
            sys.executable,
            "-m",
            "testbed",
            "platform",
            *where,
            "--ledger",
            ledger_url,
            "--ledger-prefix",
            ledger_prefix,
            "--prosumers",
            str(registry),
            "--mechanism",
            mechanism,
            "--interval-s",
            str(interval_s),
            *prices,
            *(["--credentials", str(credentials)] if credentials else []),
            *(extra_args or []),
        ]
        self.log_path = self.workdir / "platform.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60.0) -> PlatformProcess:
        """Start the process and wait until it serves (it prints one line when connected to its broker).

        Raises :class:`UserError` with the end of its log if it exits or is not serving within ``timeout_s``
        (an unreachable broker, a ledger it cannot open, a bad option).
        """
        if self.mosquitto is not None:
            (self.workdir / "mosquitto").mkdir(exist_ok=True)
            self.mosquitto.start()
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log_file, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready and self.proc.stdout else ""
        if "serving" not in line:
            self.stop()
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-8:]
            raise UserError(
                f"the platform did not come up within {timeout_s:g} s (broker {self.address.url})",
                [f"{self.log_path}: {t}" for t in tail] or [f"{self.log_path}: (empty)"],
            )
        log.info("platform process %d: %s", self.proc.pid, line.strip())
        return self

    def stop(self) -> None:
        self._stop_platform()
        if self.mosquitto is not None:
            self.mosquitto.stop()

    def _stop_platform(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> PlatformProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
