"""The wire envelope on its own: round trips, 1.4.2's spelling, nesting depth."""

from __future__ import annotations

import json

import pytest
from _redis_support import OrderPlaced
from hypothesis import given
from hypothesis import strategies as st

from eventspype.broker.redis import _envelope

LIMITS = {"max_bytes": 1 << 22, "max_depth": 64}

tags = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(min_size=1),
)


@given(tag=tags, payload=st.binary(max_size=2000))
def test_any_payload_round_trips(tag: int | str, payload: bytes) -> None:
    wire = _envelope.encode(tag, OrderPlaced, payload)
    decoded = _envelope.decode(wire, max_bytes=1 << 22, max_depth=10**6)
    assert decoded == (tag, OrderPlaced.__module__, "OrderPlaced", payload)


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


def reference_depth(text: str) -> int:
    """Bracket depth outside JSON strings, the slow obvious way."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet='ab"\\[]{}'),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='k"[{', max_size=3), children, max_size=3)
    ),
    max_leaves=40,
)


@given(value=json_values, limit=st.integers(min_value=0, max_value=8))
def test_nesting_depth_matches_a_plain_scan(value: object, limit: int) -> None:
    text = json.dumps(value)
    expected = reference_depth(text) > limit
    assert _envelope._nests_deeper_than(text, limit) is expected


@pytest.mark.parametrize("text", ["[[[", "]]]]", "[}{]", '"[[[[[["'])
def test_malformed_brackets_are_left_to_the_serializer(text: str) -> None:
    assert _envelope._nests_deeper_than(text, 1) is False
