"""The wire envelope on its own: round trips, 1.4.2's spelling, hostile shapes."""

from __future__ import annotations

import json

import msgspec
import pytest
from _redis_support import OrderPlaced
from hypothesis import given
from hypothesis import strategies as st

from eventspype.broker.redis._wire import envelope as _envelope

LIMITS = {"max_bytes": 1 << 22}

tags = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(min_size=1),
)


@given(tag=tags, payload=st.binary(max_size=2000))
def test_any_payload_round_trips(tag: int | str, payload: bytes) -> None:
    wire = _envelope.encode(tag, OrderPlaced, payload)
    decoded = _envelope.decode(wire, max_bytes=1 << 22)
    assert decoded[:4] == (tag, OrderPlaced.__module__, "OrderPlaced", payload)
    assert decoded.headers == {}
    assert decoded.headers_problem is None


@given(tag=tags, text=st.text(max_size=500))
def test_text_payloads_travel_as_text(tag: int | str, text: str) -> None:
    payload = text.encode("utf-8", "surrogatepass")
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return  # lone surrogates are not UTF-8: base64, covered above
    envelope = json.loads(_envelope.encode(tag, OrderPlaced, payload))
    assert envelope["payload"] == text
    assert "payload_encoding" not in envelope


def test_binary_payloads_travel_as_base64() -> None:
    envelope = json.loads(_envelope.encode("T", OrderPlaced, b"\x81\xa1x\x01"))
    assert envelope["payload_encoding"] == "base64"
    assert envelope["payload"] == "gaF4AQ=="


def test_what_1_4_2_writes_is_read() -> None:
    # 1.4.2 uses json.dumps defaults: ", " separators and \\u escapes.
    wire = json.dumps(
        {
            "event_tag": "ORDER_PLACED",
            "event_class": "OrderPlaced",
            "event_module": "shop.events",
            "payload": json.dumps({"note": "café ☕", "n": [1, 2]}),
        }
    ).encode()
    decoded = _envelope.decode(wire, **LIMITS)
    assert decoded.event_tag == "ORDER_PLACED"
    assert json.loads(decoded.payload) == {"note": "café ☕", "n": [1, 2]}


def test_unknown_fields_are_ignored() -> None:
    wire = _envelope.encode(3, OrderPlaced, b"{}")[:-1] + b',"future":{"x":[1]}}'
    assert _envelope.decode(wire, **LIMITS).event_tag == 3


def test_one_schema_encodes_and_decodes() -> None:
    # The bytes on the wire are the envelope struct's own encoding, field
    # for field: no second, hand-spliced copy of the schema.
    wire = _envelope.encode("T", OrderPlaced, b'{"a":1}')
    struct = msgspec.json.decode(wire, type=_envelope._Envelope)
    assert msgspec.json.encode(struct) == wire
    assert list(json.loads(wire)) == [
        "event_tag",
        "event_class",
        "event_module",
        "payload",
    ]


def hostile_payload(shape: str, size: int) -> str:
    """A payload text of about ``size`` bytes, of a shape meant to be slow."""
    if shape == "escape run after brackets":
        # The message that froze the process for 12 s (issue 8, item 1).
        return "[" * 65 + '"' + '\\"' * (size // 3)
    if shape == "unclosed string":
        return '"' + "a" * size
    if shape == "bracket run":
        return "[" * size
    if shape == "deep nesting":
        return "[" * (size // 2) + "]" * (size // 2)
    if shape == "long number":
        return "1" * size
    if shape == "unicode escapes":
        return '"' + "\\ud83d\\ude00" * (size // 12) + '"'
    raise AssertionError(shape)


SHAPES = [
    "escape run after brackets",
    "unclosed string",
    "bracket run",
    "deep nesting",
    "long number",
    "unicode escapes",
]


@pytest.mark.timeout(20)  # linear: milliseconds; the old pre-scan took minutes
@pytest.mark.parametrize("shape", SHAPES)
def test_hostile_payloads_decode_in_linear_time(shape: str) -> None:
    payload = hostile_payload(shape, 1 << 20).encode()
    wire = _envelope.encode("T", OrderPlaced, payload)
    assert _envelope.decode(wire, max_bytes=1 << 22).payload == payload


@pytest.mark.parametrize(
    "wire",
    [
        b'{"junk": ' + b"[" * 200_000 + b"]" * 200_000 + b', "payload": "x"}',
        b'{"junk": ' + b"[" * 100_000,
    ],
    ids=["balanced", "unclosed"],
)
def test_deep_nesting_in_the_envelope_is_too_deep(wire: bytes) -> None:
    with pytest.raises(_envelope.EnvelopeError) as caught:
        _envelope.decode(wire, max_bytes=1 << 22)
    assert caught.value.reason == "too_deep"
