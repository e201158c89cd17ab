"""The v1 payload rules, without a broker: every bad input becomes a ProtocolError with a stable code."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.platform import protocol as p

GOOD = {
    "schema": "fpp.order/1",
    "msg_id": "o-1",
    "prosumer": "p01",
    "interval": 4,
    "side": "buy",
    "quantity_kw": 2.5,
    "price_per_kwh": 0.2,
}


def dec(obj, kind="order"):
    return p.decode(kind, json.dumps(obj).encode() if not isinstance(obj, bytes) else obj)


def test_good_order_round_trips():
    msg = dec(GOOD)
    assert isinstance(msg, p.Order) and msg.quantity_kw == 2.5
    assert json.loads(p.encode(msg)) == {**GOOD, "energy_class": None}


@pytest.mark.parametrize(
    "payload, code",
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (b'{"schema": "fpp.order/1", "quantity_kw": NaN}', "malformed_json"),
        ({**GOOD, "schema": "fpp.order/2"}, "schema_version"),
        ({k: v for k, v in GOOD.items() if k != "schema"}, "schema_version"),
        ({**GOOD, "quantity_kw": -1.0}, "invalid"),
        ({**GOOD, "quantity_kw": 0.0}, "invalid"),
        ({**GOOD, "quantity_kw": 1e300}, "invalid"),
        ({**GOOD, "side": "hold"}, "invalid"),
        ({**GOOD, "surprise": 1}, "invalid"),
        ({**GOOD, "msg_id": "has space"}, "invalid"),
        ({**GOOD, "interval": -1}, "invalid"),
    ],
)
def test_bad_payloads_get_a_code(payload, code):
    with pytest.raises(p.ProtocolError) as err:
        dec(payload)
    assert err.value.code == code


def test_error_keeps_the_msg_id_when_it_can():
    with pytest.raises(p.ProtocolError) as err:
        dec({**GOOD, "quantity_kw": -1.0})
    assert err.value.msg_id == "o-1"


def test_oversized_payload_is_refused_before_parsing():
    with pytest.raises(p.ProtocolError) as err:
        p.decode("order", b" " * (p.MAX_PAYLOAD_BYTES + 1))
    assert err.value.code == "oversized"


def test_infinity_is_refused():
    with pytest.raises(p.ProtocolError) as err:
        p.decode("order", json.dumps({**GOOD, "price_per_kwh": float("inf")}).encode())
    assert err.value.code == "malformed_json"  # json.dumps writes Infinity, which JSON does not allow


def test_topics_parse_back():
    assert p.parse_topic(p.prosumer_topic("p01", "order")) == ("p01", "order")
    assert p.parse_topic(p.GATE_TOPIC) == (p.CLOCK_ID, "gate")
    assert p.parse_topic("fpp/v2/p/p01/order") is None


def test_hash_is_stable_and_content_sensitive():
    a, b = dec(GOOD), dec(dict(reversed(list(GOOD.items()))))
    assert p.payload_hash(a) == p.payload_hash(b)
    assert p.payload_hash(a) != p.payload_hash(dec({**GOOD, "quantity_kw": 2.6}))


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300)
    | st.dictionaries(
        st.sampled_from(list(GOOD) + ["x"]), st.none() | st.floats() | st.integers() | st.text(max_size=8)
    )
)
def test_decode_raises_only_protocol_errors(data):
    payload = data if isinstance(data, bytes) else json.dumps(data).encode()
    try:
        msg = p.decode("order", payload)
    except p.ProtocolError as exc:
        assert exc.code in {"malformed_json", "schema_version", "invalid"}
    else:
        assert msg.quantity_kw > 0
