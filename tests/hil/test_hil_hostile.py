"""Bad writes to an emulated inverter over real Modbus/TCP: each is answered with exception 3 (ILLEGAL DATA
VALUE) and changes nothing. Before this test the device acknowledged them and silently ignored them (the
"not implemented" sentinels, enumerations outside the model's symbols, a mode it does not implement)."""

from __future__ import annotations

import pytest
from pymodbus.client import ModbusTcpClient

from hil.behaviour import DerRating
from hil.emulator import DeviceSpec, EmulatorThread


@pytest.fixture(scope="module")
def pv():
    with EmulatorThread([DeviceSpec(DerRating("pv", 10.0), serial="PV-1")], dt_s=0.05, clock="manual") as emu:
        client = ModbusTcpClient("127.0.0.1", port=emu.ports[0], timeout=2)
        assert client.connect()
        try:
            yield emu, client
        finally:
            client.close()


def addr(emu, point: str, model: int = 704) -> int:
    return emu.call(lambda h: h.devices[0].profile.point_address(model, point))


def controls(emu):
    return emu.call(lambda h: h.devices[0].behaviour.controls)


@pytest.mark.parametrize(
    "point, registers",
    [
        ("WMaxLimPct", [0xFFFF]),  # uint16 "not implemented"
        ("WMaxLimPctEna", [7]),  # enum16: DISABLED 0, ENABLED 1
        ("WMaxLimPctEna", [0xFFFF]),
        ("WSetEna", [2]),
        ("WSetMod", [9]),  # not a symbol of model 704
        ("WSetMod", [0]),  # W_MAX_PCT: defined, but this device implements only WATTS
        ("WSet", [0x8000, 0x0000]),  # int32 "not implemented"
        ("WMaxLimPct", [1001]),  # 100.1 %: out of range (scale factor -1)
        ("WMaxLimPctRvrtTms", [0, 60]),  # a point the device does not act on (no reversion timer)
    ],
)
def test_bad_write_is_exception_3_and_changes_nothing(pv, point, registers):
    emu, client = pv
    before = controls(emu)
    reply = client.write_registers(addr(emu, point), registers, device_id=1)
    assert reply.isError() and reply.exception_code == 3, reply
    assert controls(emu) == before


def test_good_writes_are_applied_and_rewriting_a_whole_model_is_accepted(pv):
    emu, client = pv
    reply = client.write_registers(addr(emu, "WMaxLimPctEna"), [1], device_id=1)
    assert not reply.isError()
    assert not client.write_registers(addr(emu, "WMaxLimPct"), [455], device_id=1).isError()  # 45.5 %
    c = controls(emu)
    assert c.limit_enabled and c.limit_pct == pytest.approx(45.5)
    start = addr(emu, "WMaxLimPctEna")  # the run of RW registers WMaxLimPctEna .. WMaxLimPctRvrtTms
    block = client.read_holding_registers(start, count=6, device_id=1).registers
    assert not client.write_registers(start, block, device_id=1).isError()  # the same values back: fine
    assert controls(emu) == c
    assert not client.write_registers(addr(emu, "WMaxLimPctEna"), [0], device_id=1).isError()


# ---- fpp hil scan / emulate options, and a device that hangs up ------------------------------------------


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--timeout", "0"], "--timeout 0.0: must be a number of seconds > 0"),
        (["--timeout", "-1"], "--timeout -1.0"),
        (["--timeout", "nan"], "--timeout nan"),
        (["--timeout", "inf"], "--timeout inf"),
        (["--unit", "300"], "--unit 300: must be a Modbus unit id 1..247"),
        (["--unit", "0"], "--unit 0"),
        (["--address", "127.0.0.1:70000"], "--address"),
    ],
)
def test_scan_options_are_checked_before_connecting(capsys, args, needle):
    from testbed.cli import main

    base = {"--address": "127.0.0.1:1", "--unit": "1", "--timeout": "1"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    argv = ["hil", "scan"] + [x for k, v in {**base, **given}.items() for x in (k, v)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--grid-port", "70000"], "--grid-port 70000"),
        (["--dt", "inf"], "--dt inf"),
        (["--duration", "nan"], "--duration nan"),
        (["--rated-kw", "inf"], "rated_kw inf"),
        (["--slow-p-s", "inf"], "p_response_s inf"),
    ],
)
def test_emulate_options_are_checked(capsys, args, needle):
    from testbed.cli import main

    duration = [] if "--duration" in args else ["--duration", "3"]  # stops even where an option is not checked
    assert main(["hil", "emulate", "--kind", "pv", "--port", "0", *duration, *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_scan_with_an_infinite_timeout_against_a_silent_server_does_not_hang():
    """A listening socket that never accepts: the kernel completes the handshake, nothing ever answers."""
    import socket
    import subprocess
    import sys

    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "testbed", "hil", "scan", "--address", f"127.0.0.1:{port}", "--timeout", "inf"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2 and "--timeout inf" in proc.stderr, proc.stderr


def test_a_server_that_hangs_up_at_once_is_reported_as_such_not_as_a_timeout(capsys):
    import socket
    import threading
    import time

    from testbed.cli import main

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def hang_up():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        t0 = time.monotonic()
        code = main(["hil", "scan", "--address", f"127.0.0.1:{port}", "--timeout", "5"])
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        thread.join(2)
        server.close()
    err = capsys.readouterr().err
    assert code == 2 and "closed the connection" in err and "no answer" not in err, err
    assert elapsed < 2.5  # told at once, not after the 5 s timeout (generous for a loaded machine)
