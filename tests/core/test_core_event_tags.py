"""Tags: normalization, display, TagEnum validation and EventPublication."""

from __future__ import annotations

from enum import Enum, IntEnum, auto

import pytest
from _core_support import OtherTags, Placed, Tags
from hypothesis import given
from hypothesis import strategies as st

from eventspype import (
    Event,
    EventPublication,
    TagEnum,
    format_event_tag,
    normalize_event_tag,
)

# --- normalize_event_tag ----------------------------------------------------


def test_enum_member_normalizes_to_class_dot_member() -> None:
    assert normalize_event_tag(Tags.SHIPPED) == "Tags.SHIPPED"
    assert normalize_event_tag(Tags.REFUNDED) == "Tags.REFUNDED"


def test_enums_sharing_a_value_are_different_tags() -> None:
    assert Tags.SHIPPED.value == OtherTags.SHIPPED.value
    assert normalize_event_tag(Tags.SHIPPED) != normalize_event_tag(OtherTags.SHIPPED)
    # ... and neither collapses onto its raw value.
    assert normalize_event_tag(Tags.SHIPPED) != normalize_event_tag(1)


def test_int_enum_uses_identity_not_value() -> None:
    class Codes(IntEnum):
        OK = 200

    assert normalize_event_tag(Codes.OK) == "Codes.OK"


def test_str_is_case_insensitive_upper() -> None:
    assert normalize_event_tag("order_placed") == "ORDER_PLACED"
    assert normalize_event_tag("Order_Placed") == "ORDER_PLACED"
    assert normalize_event_tag("ORDER_PLACED") == "ORDER_PLACED"


def test_int_is_kept_as_is() -> None:
    result = normalize_event_tag(42)
    assert result == 42
    assert type(result) is int
    assert normalize_event_tag(-3) == -3
    assert normalize_event_tag(0) == 0


@pytest.mark.parametrize(
    "bad", [True, False, 1.5, 0.0, None, b"bytes", ("a",), object()]
)
def test_invalid_tags_raise_value_error_with_clear_message(bad: object) -> None:
    with pytest.raises(ValueError, match="tag") as info:
        normalize_event_tag(bad)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(bad) in message or type(bad).__name__ in message


@given(st.text())
def test_str_normalization_is_idempotent(tag: str) -> None:
    once = normalize_event_tag(tag)
    assert normalize_event_tag(once) == once


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126)))
def test_ascii_str_normalization_ignores_case(tag: str) -> None:
    assert normalize_event_tag(tag.lower()) == normalize_event_tag(tag.upper())


@given(st.integers())
def test_int_normalization_is_identity(tag: int) -> None:
    assert normalize_event_tag(tag) == tag
    assert normalize_event_tag(normalize_event_tag(tag)) == tag


# --- format_event_tag -------------------------------------------------------


def test_format_event_tag() -> None:
    assert format_event_tag(Tags.SHIPPED) == "Tags.SHIPPED"
    assert format_event_tag("order_placed") == '"order_placed"'
    assert format_event_tag(42) == "42"


# --- TagEnum ----------------------------------------------------------------


def test_tag_enum_accepts_int_and_str_members() -> None:
    class Good(TagEnum):
        ONE = 1
        TWO = "two"

    assert Good.ONE.value == 1
    assert Good.TWO.value == "two"
    assert Good(1) is Good.ONE  # value lookup still works
    assert Good("two") is Good.TWO
    assert normalize_event_tag(Good.ONE) == "Good.ONE"


def test_tag_enum_supports_auto() -> None:
    class Auto(TagEnum):
        A = auto()
        B = auto()

    assert {Auto.A.value, Auto.B.value} == {1, 2}


@pytest.mark.parametrize("bad", [1.5, None, b"x", frozenset()])
def test_tag_enum_rejects_other_values_at_class_creation(bad: object) -> None:
    with pytest.raises(TypeError, match=type(bad).__name__):

        class Bad(TagEnum):
            GOOD = 1
            BAD = bad


def test_tag_enum_rejects_tuple_values() -> None:
    with pytest.raises(TypeError):

        class Bad(TagEnum):
            PAIR = (1, 2)


# --- Event ------------------------------------------------------------------


def test_event_marker_base_is_optional_and_usable_with_dataclasses() -> None:
    from dataclasses import dataclass

    @dataclass
    class Created(Event):
        user_id: int

    created = Created(5)
    assert created.user_id == 5
    assert isinstance(created, Event)


# --- EventPublication -------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "normalized"),
    [("order_placed", "ORDER_PLACED"), (7, 7), (Tags.SHIPPED, "Tags.SHIPPED")],
)
def test_publication_normalizes_and_keeps_original(
    tag: Enum | int | str, normalized: int | str
) -> None:
    publication = EventPublication(tag, Placed)
    assert publication.event_tag == normalized
    assert publication.original_tag is tag
    assert publication.event_class is Placed


def test_publication_rejects_bad_tag() -> None:
    with pytest.raises(ValueError, match="tag"):
        EventPublication(1.5, Placed)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad_class", [Placed(1), "Placed", None, 3])
def test_publication_rejects_non_class_event_class(bad_class: object) -> None:
    with pytest.raises(TypeError, match="class"):
        EventPublication("x", bad_class)


def test_publications_compare_by_identity() -> None:
    first = EventPublication("same", Placed)
    second = EventPublication("same", Placed)
    assert first != second
    assert len({first, second}) == 2


def test_publication_repr_names_tag_and_class() -> None:
    text = repr(EventPublication("order_placed", Placed))
    assert "ORDER_PLACED" in text
    assert "Placed" in text
