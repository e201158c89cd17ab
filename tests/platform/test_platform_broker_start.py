"""Starting a test broker when its port is taken between choosing it and binding it (two test workers, or any
other process): the broker's own exit is noticed, instead of taking the other process's answer for its own."""

import socket
import time

import pytest

from testbed.platform.broker import MosquittoBroker, mosquitto_available

pytestmark = pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed")


def listening_on(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def test_a_port_taken_meanwhile_makes_the_broker_take_another():
    broker = MosquittoBroker()
    taken = broker.port
    other = listening_on(taken)  # someone else answers there now
    try:
        broker.start()
        try:
            assert broker.port != taken and broker.address.port == broker.port
            assert broker.proc is not None and broker.proc.poll() is None
            with socket.create_connection(("127.0.0.1", broker.port), timeout=2):
                pass
            assert "Address already in use" in (broker.workdir / "mosquitto.log").read_text()
        finally:
            broker.close()
    finally:
        other.close()


def test_a_port_asked_for_and_taken_is_a_clear_error_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    other = listening_on(port)
    broker = MosquittoBroker(port)
    try:
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match=f"did not start on port {port}"):
            broker.start()
        assert time.monotonic() - t0 < 5  # not the 10 s wait for a port that answers (someone else's)
    finally:
        broker.close()
        other.close()
