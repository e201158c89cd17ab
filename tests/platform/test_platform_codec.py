"""The msgspec fast path (testbed.platform.codec) against the reference decoder (protocol.decode, pydantic).

The rule under test: whatever bytes arrive, :func:`codec.decode_inbound` answers exactly as
:func:`protocol.decode` does (the same values and payload hash, or the same refusal code and detail), and
:func:`codec.decode_reply` reads exactly what :func:`protocol.decode_reply` reads. The payloads are mostly
valid messages with one field changed to a hostile value, a key given twice, or blanks and escapes where
JSON allows them, because that is where a second decoder could disagree with the first.
"""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.platform import codec
from testbed.platform import protocol as p

from .helpers import make_core, order

VALID = {
    "order": {"schema": "fpp.order/1", "msg_id": "run-3-p01", "prosumer": "p01", "interval": 3, "side": "sell",
              "quantity_kw": 2.5, "price_per_kwh": 0.15, "energy_class": "green"},
    "offer": {"schema": "fpp.offer/1", "msg_id": "f-1", "prosumer": "p02", "interval": 7, "p_min_kw": -3.0,
              "p_max_kw": 1.5, "cost_a": 0.2, "cost_b": 0.1},
    "telemetry": {"schema": "fpp.telemetry/1", "msg_id": "t:1", "prosumer": "p01", "interval": 2,
                  "e_export_kwh": 0.8, "e_import_kwh": 0, "soc": 0.5},
    "gate": {"schema": "fpp.gate/1", "msg_id": "g-4", "interval": 4, "t_s": 3600.0},
}
HOSTILE = [
    None, True, False, 0, -1, 1, 2**53, 2**53 + 1, 2**64, -(2**70), 0.0, -0.0, 1e-320, 1e308, 1e5, 1e5 + 1e-9,
    10, 10.000001, -10, 3.0, 0.5, "3", "1_0", "", "sell", "buy", "green", "grey", "x" * 65, "a\n", "é",
    "fpp.order/1", "fpp.gate/1", [], {}, [1], {"a": 1},
]
RAW_NUMBERS = ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1E2", "1.0e-7", "0.1e1", "12345678901234567890123"]


def reference(kind: str, payload: bytes):
    try:
        msg = p.decode(kind, payload)
    except p.ProtocolError as exc:
        return ("refused", exc.code, exc.detail, exc.msg_id)
    return ("taken", msg.model_dump(mode="json", by_alias=True), p.payload_hash(msg))


def fast(kind: str, payload: bytes):
    try:
        got = codec.decode_inbound(kind, payload)
    except p.ProtocolError as exc:
        return ("refused", exc.code, exc.detail, exc.msg_id)
    return ("taken", json.loads(got.text), got.hash)


def same(kind: str, payload: bytes) -> None:
    assert fast(kind, payload) == reference(kind, payload), payload


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(list(VALID)),
    field=st.text(max_size=3) | st.sampled_from(["schema", "msg_id", "prosumer", "interval", "side", "quantity_kw",
                                                 "price_per_kwh", "energy_class", "p_min_kw", "cost_a", "e_export_kwh",
                                                 "soc", "t_s"]),
    value=st.sampled_from(HOSTILE) | st.floats() | st.integers() | st.text(max_size=6),
    drop=st.booleans(),
)
def test_one_field_changed_is_answered_as_by_the_reference(kind, field, value, drop):
    data = dict(VALID[kind])
    if drop:
        data.pop(field, None)
    else:
        data[field] = value
    same(kind, json.dumps(data).encode())


@pytest.mark.parametrize("kind", list(VALID))
def test_every_field_with_every_hostile_value_is_answered_as_by_the_reference(kind):
    for field in [*VALID[kind], "energy_class", "soc", "x"]:
        for value in [*HOSTILE, *(v * s for v in (1e-9, 1e-3, 0.25, 10, 1e3, 1e5) for s in (1, -1))]:
            same(kind, json.dumps({**VALID[kind], field: value}).encode())
        rest = {k: v for k, v in VALID[kind].items() if k != field}
        same(kind, json.dumps(rest).encode())


@pytest.mark.parametrize("kind", list(VALID))
@pytest.mark.parametrize("raw", RAW_NUMBERS)
def test_numbers_json_may_spell_in_many_ways(kind, raw):
    for field in ("interval", "quantity_kw", "t_s", "e_export_kwh", "cost_a", "soc"):
        text = json.dumps({**VALID[kind], field: "@"}).replace('"@"', raw)
        same(kind, text.encode())


@pytest.mark.parametrize("kind", list(VALID))
def test_a_key_given_twice_is_refused_as_before(kind):
    good = json.dumps(VALID[kind])
    for key, value in VALID[kind].items():
        for spelling in (f'"{key}"', f'"{key}" ', f'"{key}"\n\t', '"' + "".join(f"\\u{ord(c):04x}" for c in key) + '"'):
            twice = good[:-1] + f", {spelling}: {json.dumps(value)}}}"
            assert reference(kind, twice.encode())[1] == "malformed_json"
            same(kind, twice.encode())


@pytest.mark.parametrize("kind", list(VALID))
def test_valid_messages_in_any_spelling_are_taken_with_the_reference_hash(kind):
    data = VALID[kind]
    spellings = [
        json.dumps(data),
        json.dumps(data, separators=(",", ":")),
        json.dumps(data, indent=2),
        json.dumps(dict(reversed(list(data.items())))),
        json.dumps(data).replace('"msg_id"', '"msg\\u005fid"'),  # an escaped key: the reference path reads it
        " \n" + json.dumps(data) + "\r\n",
    ]
    for text in spellings:
        assert reference(kind, text.encode())[0] == "taken"
        same(kind, text.encode())
    # the fast path itself takes the plain spellings (not only the fallback)
    assert codec._take(codec._INBOUND[kind], spellings[0].encode()) is not None


@pytest.mark.parametrize(
    "payload",
    [b"", b"[]", b"null", b"\xff\xfe", b'{"schema": "fpp.order/1"', b"{}" * 2, b" " * (p.MAX_PAYLOAD_BYTES + 1),
     json.dumps({**VALID["order"], "msg_id": "a\n"}).encode(),
     json.dumps({**VALID["order"], "prosumer": "p01\n"}).encode(),
     json.dumps({**VALID["order"], "msg_id": "\ud800"}).encode()],
)
def test_broken_payloads_get_the_reference_refusal(payload):
    for kind in VALID:
        assert reference(kind, payload)[0] == "refused"
        same(kind, payload)


def test_a_kind_without_a_struct_goes_through_the_reference_decoder():
    with pytest.raises(p.ProtocolError) as err:
        codec.decode_inbound("nonsense", json.dumps(VALID["order"]).encode())
    assert err.value.code == "unknown_kind"


# ---- replies --------------------------------------------------------------------------------------------


def platform_replies(ledger_url) -> list[tuple[str, bytes]]:
    """Every kind of message a real core publishes: acks, errors, settlements, dispatch, open, result."""
    core = make_core(*ledger_url, [("p01", "bus1", "green"), ("p02", "bus2", None)])
    outs = [core.open_message()]
    for pid, side, price in (("p01", "sell", 0.1), ("p02", "buy", 0.25)):
        outs += core.handle(p.prosumer_topic(pid, "order"), json.dumps(order(pid, f"{pid}-o", 0, side=side,
                                                                             q=2.0, price=price)).encode())
    outs += core.handle(p.GATE_TOPIC, json.dumps(VALID["gate"] | {"interval": 0}).encode())
    outs += core.handle(p.prosumer_topic("p01", "order"), b"{not json")
    core.ledger.close()
    return [(o.topic.rsplit("/", 1)[-1], o.payload) for o in outs]


def reply_reference(kind: str, payload: bytes):
    try:
        return p.decode_reply(kind, payload).model_dump(mode="json", by_alias=True)
    except p.ProtocolError as exc:
        return ("refused", exc.code, exc.detail)


def reply_fast(kind: str, payload: bytes):
    try:
        return codec.as_dict(codec.decode_reply(kind, payload))
    except p.ProtocolError as exc:
        return ("refused", exc.code, exc.detail)


def test_replies_of_a_real_core_read_the_same_and_on_the_fast_path(ledger_url):
    replies = platform_replies(ledger_url)
    assert {k for k, _ in replies} == {"ack", "error", "settlement", "dispatch", "open", "result"}
    for kind, payload in replies:
        assert reply_fast(kind, payload) == reply_reference(kind, payload)
        assert codec._take(codec._REPLY[kind], payload) is not None, (kind, payload)


def test_changed_replies_read_as_by_the_reference(sqlite_url):
    replies = platform_replies(sqlite_url)

    @settings(max_examples=300, deadline=None)
    @given(data=st.data())
    def check(data):
        kind, payload = data.draw(st.sampled_from(replies))
        obj = json.loads(payload)
        key = data.draw(st.sampled_from([*obj, "x"]))
        value = data.draw(st.sampled_from(HOSTILE) | st.floats(allow_nan=False) | st.integers() | st.text(max_size=4))
        if data.draw(st.booleans()):
            obj.pop(key, None)
        else:
            obj[key] = value
        text = json.dumps(obj)
        if data.draw(st.booleans()):  # the same key twice
            text = text[:-1] + f", {json.dumps(key)}: {json.dumps(value)}}}"
        assert reply_fast(kind, text.encode()) == reply_reference(kind, text.encode())

    check()


@pytest.mark.parametrize(
    "payload",
    [b'{"msg_id":"a\tb","code":"x","detail":"y"}', b'\xef\xbb\xbf{"msg_id":"a","code":"x","detail":"y"}',
     b'{"msg_id":"a\x01","code":"x","detail":"y"}', b'{"msg_id":"a","code":"x","detail":"y\x7f"}',
     b'{"msg_id":"a","code":"x","detail":"\xc3\xa9"}', b'{"msg_id":"a","code":"x","detail":"\xed\xa0\x80"}',
     b'{"msg_id":null,"code":"x","detail":"y"}', b'{"msg_id":"a","code":"x","detail":"y","schema":"fpp.error/2"}'],
)
def test_raw_bytes_in_reply_strings_read_as_by_the_reference(payload):
    """Control characters, a byte-order mark, UTF-8 of a lone surrogate: JSON's own rules, both ways."""
    assert reply_fast("error", payload) == reply_reference("error", payload)


def test_a_default_list_is_each_message_s_own():
    a = codec.decode_reply("settlement", b'{"prosumer":"p","interval":1,"kind":"market","p_trade_kw":0,'
                                         b'"e_kwh":0,"amount":0}')
    b = codec.decode_reply("settlement", b'{"prosumer":"q","interval":1,"kind":"market","p_trade_kw":0,'
                                         b'"e_kwh":0,"amount":0}')
    assert a.trades == [] and a.trades is not b.trades


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["order", "offer", "telemetry"]),
    field=st.sampled_from(["msg_id", "prosumer", "interval", "side", "quantity_kw", "price_per_kwh", "energy_class",
                           "p_min_kw", "p_max_kw", "cost_a", "cost_b", "e_export_kwh", "e_import_kwh", "soc"]),
    value=st.sampled_from(HOSTILE) | st.floats() | st.integers(),
)
def test_a_message_a_client_builds_as_a_struct_is_the_reference_message(kind, field, value):
    """What a client builds with codec.prosumer_message: refused where the reference model refuses the same
    fields, else the same bytes on the wire as the reference model's."""
    fields = dict(VALID[kind])
    if field in codec.INBOUND_STRUCTS[kind].__struct_fields__:
        fields[field] = value
    try:
        model = p.INBOUND_MODELS[kind].model_validate(fields, strict=True)
    except ValueError:
        model = None
    try:
        struct = codec.prosumer_message(kind, fields)
    except ValueError:
        struct = None
    if model is None:
        assert struct is None, fields
        return
    assert struct is not None, fields
    assert codec.encode_message(struct) == codec.encode_message(model) == p.encode(model)
