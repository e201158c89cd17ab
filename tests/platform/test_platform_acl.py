"""Security with Mosquitto: per-prosumer credentials, the generated ACL (``fpp platform acl``), and TLS."""

import asyncio
import json
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

from testbed.cli import main as fpp
from testbed.orchestration.platform_process import PlatformProcess
from testbed.platform import protocol as p
from testbed.platform import services_protocol as sp
from testbed.platform.acl import acl_text, mosquitto_passwd
from testbed.platform.broker import BrokerAddress, MosquittoBroker, mosquitto_available
from testbed.platform.client import Connection, ProsumerClient

from .helpers import make_core, order, serving

pytestmark = pytest.mark.skipif(
    not (mosquitto_available() and mosquitto_passwd()),
    reason="needs mosquitto and mosquitto_passwd for password and ACL files",
)


def test_acl_lets_prosumers_publish_only_under_their_own_id(tmp_path, sqlite_url, capsys):
    registry = tmp_path / "prosumers.yaml"
    registry.write_text("prosumers:\n  - {id: p0, bus: b0}\n  - {id: p1, bus: b1}\n")
    out = tmp_path / "acl"
    assert fpp(["platform", "acl", "--prosumers", str(registry), "--out", str(out)]) == 0
    creds = json.loads((out / "credentials.json").read_text())
    assert set(creds) == {"platform", "clock", "operator", "p0", "p1"}
    assert "p0:" + creds["p0"] not in (out / "passwd").read_text()  # hashed, not plain

    with MosquittoBroker(password_file=out / "passwd", acl_file=out / "acl") as broker:

        def conn(user, password=None):
            return Connection(broker.address, username=user, password=password or creds[user])

        async def main():
            core = make_core(*sqlite_url, [("p0", "b0", None), ("p1", "b1", None)])
            async with serving(core, conn("platform")), ProsumerClient("p0", conn("p0")) as c0:
                ok = await c0.submit(p.Order.model_validate(order("p0", "own", 1)))
                # p0 tries to publish as p1 and to close a gate: the broker drops both
                async with conn("p0").client("intruder") as raw:
                    await raw.publish(
                        p.prosumer_topic("p1", "order"), json.dumps(order("p1", "forged", 1)).encode(), qos=1
                    )
                    await raw.publish(
                        p.GATE_TOPIC,
                        json.dumps({"schema": "fpp.gate/1", "msg_id": "g", "interval": 1, "t_s": 0}).encode(),
                        qos=1,
                    )
                    # ... and to advertise a contract (the operator's) and to offer under p1's id: dropped too
                    await raw.publish(f"{sp.SERVICES}/contract", json.dumps(
                        {"schema": "fpp.contract/1", "msg_id": "c", "contract": {"id": "x"}}).encode(), qos=1)
                    await raw.publish(p.prosumer_topic("p1", "service_offer"), json.dumps(
                        {"schema": "fpp.service_offer/1", "msg_id": "forged-offer"}).encode(), qos=1)
                # an order p0 sends afterwards is handled after anything the broker let through
                after = await c0.submit(p.Order.model_validate(order("p0", "after", 1)))
                refused = None
                try:
                    async with conn("p1", "wrong-password").client("bad"):
                        pass
                except aiomqtt.MqttError as exc:
                    refused = exc
            return core, ok, after, refused

        core, ok, after, refused = asyncio.run(main())
    assert ok.msg_id == "own" and after.msg_id == "after"
    assert [m.msg_id for m in core.ledger.messages("order", 1)] == ["own", "after"]
    assert core.ledger.find_message("p1", "forged") is None and core.ledger.interval(1) is None
    assert core.ledger.find_message("operator", "c") is None and core.ledger.find_message("p1", "forged-offer") is None
    assert refused is not None
    core.ledger.close()


def test_acl_text_names_each_topic_rule():
    text = acl_text()
    assert "pattern write fpp/v1/p/%u/order" in text
    assert "pattern read fpp/v1/p/%u/settlement" in text
    assert "user clock\ntopic write fpp/v1/clock/gate" in text
    assert "user operator\ntopic write fpp/v1/services/contract" in text
    assert "pattern write fpp/v1/p/%u/service_offer" in text and "pattern read fpp/v1/p/%u/award" in text
    assert "pattern write fpp/v1/p/+/" not in text


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make test certificates")
def test_tls_settings_are_passed_through(tmp_path):
    """A TLS-only Mosquitto listener: the platform process and a prosumer connect with the CA given."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=fpp test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=tmp_path,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=tmp_path,
    )
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
        cwd=tmp_path,
    )
    files = (tmp_path / "ca.crt", tmp_path / "server.crt", tmp_path / "server.key")
    url = f"sqlite:///{tmp_path}/ledger.db"
    with MosquittoBroker(tls_files=files) as broker:
        assert broker.address.url.startswith("mqtts://")
        with PlatformProcess(
            [{"id": "p0"}],
            ledger_url=url,
            broker_url=broker.address.url,
            workdir=tmp_path / "run",
            extra_args=["--tls-ca", str(files[0])],
        ):

            async def main():
                ctx = ssl.create_default_context(cafile=str(files[0]))
                async with ProsumerClient("p0", Connection(broker.address, tls_context=ctx)) as c:
                    ack = await c.submit(p.Order.model_validate(order("p0", "tls-1", 1)))
                plain = Connection(BrokerAddress("127.0.0.1", broker.port))  # no TLS: refused
                try:
                    async with plain.client("plain", timeout=2.0):
                        return ack, None
                except aiomqtt.MqttError as exc:
                    return ack, exc

            ack, refused = asyncio.run(main())
    assert ack.msg_id == "tls-1" and refused is not None


def _short_market_scenario(tmp_path, extra: str) -> Path:
    root = Path(__file__).resolve().parents[2]
    text = (root / "scenarios" / "demo.yaml").read_text()
    text = text.replace("start: 2016-07-24T00:00:00", "start: 2016-07-24T11:00:00")
    text = text.replace("duration_h: 24", "duration_h: 0.75")
    text = text.replace("  mechanism: double-auction", f"  mechanism: double-auction\n{extra}")
    path = tmp_path / "secured.yaml"
    path.write_text(text)
    return path


def test_fpp_run_trades_through_a_broker_that_requires_passwords(tmp_path, capsys):
    """`fpp platform acl --scenario` writes accounts for the scenario's prosumers; with market.broker and
    market.credentials, the platform, the clock and every agent log in with their own password, under the ACL."""
    plain = _short_market_scenario(tmp_path, "")
    out = tmp_path / "acl"
    assert fpp(["platform", "acl", "--scenario", str(plain), "--out", str(out)]) == 0
    creds = json.loads((out / "credentials.json").read_text())
    assert len(creds) == 118 + 3 and "LV3.101_Load_1" in creds  # the demo's 118 homes, platform, clock, operator
    with MosquittoBroker(password_file=out / "passwd", acl_file=out / "acl") as broker:
        extra = f"  broker: mqtt://127.0.0.1:{broker.address.port}\n  credentials: acl/credentials.json"
        scenario = _short_market_scenario(tmp_path, extra)
        res = subprocess.run(
            [sys.executable, "-m", "testbed", "run", str(scenario), "--out", str(tmp_path / "run"), "--no-progress"],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        market = json.loads((tmp_path / "run" / "kpis.json").read_text())["market"]
        # interval 0 has no orders (nothing measured yet); at 11:15 and 11:30 the PV owners sell
        assert market["interval_status"] == {"no_orders": 1, "optimal": 2} and market["traded_kwh"] > 0
        # one prosumer's password missing: refused before anything starts, naming the account
        del creds["LV3.101_Load_7"]
        (out / "credentials.json").write_text(json.dumps(creds))
        res = subprocess.run(
            [sys.executable, "-m", "testbed", "run", str(scenario), "--out", str(tmp_path / "run2"), "--no-progress"],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 2
        assert "has no password for 1 account(s)" in res.stderr and "'LV3.101_Load_7'" in res.stderr


def test_a_prosumer_using_the_platforms_client_id_cannot_knock_it_off(tmp_path, sqlite_url):
    """With the generated configuration a connection's client id is its account: p0 connecting under the
    platform's client id gets its own id, and the platform stays connected (before: kicked about once a
    second while p0 kept reconnecting)."""
    from testbed.platform.acl import write_acl

    creds = write_acl(["p0"], tmp_path / "acl")
    assert "use_username_as_clientid true" in (tmp_path / "acl" / "mosquitto.conf").read_text()
    with MosquittoBroker(password_file=tmp_path / "acl" / "passwd", acl_file=tmp_path / "acl" / "acl") as broker:

        def conn(user):
            return Connection(broker.address, username=user, password=creds[user])

        async def main():
            core = make_core(*sqlite_url, [("p0", "b0", None)])
            async with serving(core, conn("platform")) as service:
                for _ in range(3):  # take-over attempts
                    async with conn("p0").client(service.client_id):
                        await asyncio.sleep(0.3)
                async with ProsumerClient("p0", conn("p0")) as c0:
                    ack = await c0.submit(p.Order.model_validate(order("p0", "after", 1)))
                return service.connections, ack

        connections, ack = asyncio.run(main())
    assert connections == 1 and ack.msg_id == "after"


def test_secrets_are_never_readable_by_others_not_even_for_a_moment(tmp_path):
    """Whenever a file is opened, renamed or has its mode changed while the files are written, ``passwd`` and
    ``credentials.json`` (once they exist) are 0600: no moment in which another user could read them (before:
    written with the umask's 0644, then tightened). Watched with a Python audit hook, umask 022."""
    import os
    import stat

    from testbed.platform.acl import write_acl

    out = tmp_path / "acl"
    seen: list[tuple[str, str, int]] = []
    watching = [True]

    def hook(event, args):
        if watching[0] and event in ("open", "os.chmod", "os.rename", "os.replace", "subprocess.Popen"):
            for name in ("passwd", "credentials.json"):
                if (out / name).exists():
                    seen.append((event, name, stat.S_IMODE((out / name).stat().st_mode)))

    sys.addaudithook(hook)  # hooks cannot be removed: it switches itself off below
    old_umask = os.umask(0o022)
    try:
        write_acl(["p0", "p1"], out)
    finally:
        watching[0] = False
        os.umask(old_umask)
    assert {name for _, name, _ in seen} == {"passwd", "credentials.json"}
    assert all(mode == 0o600 for _, _, mode in seen), sorted(set(seen))
    assert json.loads((out / "credentials.json").read_text())["p1"]


def test_a_prosumers_wildcard_reads_only_its_own_topics(tmp_path):
    """Under the generated ACL the one MQTT 5 subscription per prosumer (fpp/v1/p/<id>/+) reads only its own
    replies: p0 subscribed to p1's wildcard (Mosquitto grants the filter) receives none of p1's messages, and
    its own wildcard brings its ack but not another prosumer's."""
    from testbed.platform.acl import write_acl
    from testbed.platform.mqtt_session import V5, subscribe, version_of

    creds = write_acl(["p0", "p1"], tmp_path / "acl")
    with MosquittoBroker(password_file=tmp_path / "acl" / "passwd", acl_file=tmp_path / "acl" / "acl") as broker:

        def conn(user):
            return Connection(broker.address, username=user, password=creds[user], mqtt_version=V5)

        async def main():
            async with conn("p0").client("p0") as p0, conn("platform").client("platform") as platform:
                await subscribe(p0, [p.prosumer_topic("p0", "+"), p.prosumer_topic("p1", "+")], no_local=True)
                for pid in ("p1", "p0"):
                    for kind in ("ack", "settlement", "order"):
                        await platform.publish(p.prosumer_topic(pid, kind), b"{}", qos=1)
                got = []
                try:
                    async with asyncio.timeout(0.5):
                        async for m in p0.messages:
                            got.append(str(m.topic))
                except TimeoutError:
                    pass
                return version_of(p0), got

        version, got = asyncio.run(main())
    assert version == V5
    assert got == [p.prosumer_topic("p0", "ack"), p.prosumer_topic("p0", "settlement")]
