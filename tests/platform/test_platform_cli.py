"""``fpp platform`` as a process: embedded broker, wall clock, and clear errors for bad options."""

import asyncio
import json
import time

import pytest

from testbed.cli import main as fpp
from testbed.orchestration.platform_process import PlatformProcess
from testbed.platform import protocol as p
from testbed.platform.broker import mosquitto_available
from testbed.platform.client import Connection, ProsumerClient
from testbed.platform.ledger import Ledger

from .helpers import order


@pytest.mark.parametrize("local_broker", ["amqtt", "auto"])
def test_platform_with_its_own_broker_serves_orders(tmp_path, local_broker):
    """``amqtt``: the platform's embedded broker; ``auto``: Mosquitto when installed, else the embedded one."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    with PlatformProcess(
        [{"id": "p0"}], ledger_url=url, workdir=tmp_path / "run", local_broker=local_broker
    ) as proc:
        expected = "mosquitto" if local_broker == "auto" and mosquitto_available() else "amqtt"
        assert proc.broker_name == expected

        async def main():
            async with ProsumerClient("p0", Connection(proc.address)) as c:
                return await c.submit(p.Order.model_validate(order("p0", "m1", 1)))

        ack = asyncio.run(main())
    assert ack.msg_id == "m1"
    assert Ledger(url).find_message("p0", "m1") is not None
    if expected == "mosquitto":
        assert proc.mosquitto is not None and proc.mosquitto.proc is None  # stopped with the platform


@pytest.mark.realtime
def test_wall_clock_platform_closes_gates_itself(broker, tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    with PlatformProcess(
        [{"id": "p0"}],
        ledger_url=url,
        broker_url=broker.address.url,
        interval_s=1.0,
        workdir=tmp_path / "run",
        extra_args=["--clock", "wall", "--gate-lead-s", "0.2"],
    ):
        deadline = time.monotonic() + 20
        led = Ledger(url)
        while len(led.intervals()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        rows = led.intervals()
    assert len(rows) >= 2
    ks = [r[0] for r in rows]
    assert ks == list(range(ks[0], ks[0] + len(ks)))  # consecutive intervals, none skipped
    # interval k closes at Unix time k - 0.2 s (interval 1 s)
    assert all(abs(r[3] - (r[0] - 0.2)) < 5.0 for r in rows)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--prosumers", "missing.yaml"], "cannot read the prosumer registry"),
        (["--ledger", "mysql://x"], "unknown ledger URL"),
        (["--broker", "http://x", "--prosumers", "reg.yaml"], "broker URL"),
        (["--interval-s", "0", "--prosumers", "reg.yaml"], "--interval-s"),
        (["--interval-s", "inf", "--prosumers", "reg.yaml"], "--interval-s inf"),
        (["--interval-s", "nan", "--prosumers", "reg.yaml"], "--interval-s nan"),
        (["--gate-lead-s", "nan", "--prosumers", "reg.yaml"], "--gate-lead-s nan"),
        (["--listen-port", "70000", "--prosumers", "reg.yaml"], "--listen-port 70000: must be a TCP port"),
        (["--import-price-per-kwh", "inf", "--prosumers", "reg.yaml"], "--import-price-per-kwh inf"),
        (["--max-payload-bytes", "0", "--prosumers", "reg.yaml"], "--max-payload-bytes 0"),
    ],
)
def test_bad_options_give_one_clear_error(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reg.yaml").write_text(json.dumps({"prosumers": [{"id": "p0"}]}))
    assert fpp(["platform", "--ledger", f"sqlite:///{tmp_path}/l.db", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_bad_registry_lists_every_problem(tmp_path, capsys):
    reg = tmp_path / "reg.yaml"
    reg.write_text("prosumers:\n  - {id: 'bad id'}\n  - {id: clock}\n  - {id: p1, colour: red}\n")
    assert fpp(["platform", "--ledger", f"sqlite:///{tmp_path}/l.db", "--prosumers", str(reg)]) == 2
    err = capsys.readouterr().err
    assert "prosumers.0.id" in err and "prosumers.2.colour" in err


def test_unreachable_broker_is_a_clear_error_not_a_hang(tmp_path, refused_port):
    from testbed.domain.errors import UserError

    dead = f"mqtt://127.0.0.1:{refused_port}"  # nothing listens there
    proc = PlatformProcess(
        [{"id": "p0"}], ledger_url=f"sqlite:///{tmp_path}/l.db", broker_url=dead, workdir=tmp_path / "run"
    )
    with pytest.raises(UserError) as err:
        proc.start(timeout_s=3.0)
    assert "did not come up" in str(err.value) and "lost the broker" in str(err.value)
    assert proc.proc is None  # stopped
