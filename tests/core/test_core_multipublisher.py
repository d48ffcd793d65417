"""MultiPublisher: declared publications, lookup, validation, callbacks, brokers."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from _core_support import (
    Exploding,
    Placed,
    Recorder,
    RecordingBroker,
    Refunded,
    Shipped,
    Tags,
)

from eventspype import EventPublication, LocalBroker, MultiPublisher


class Shop(MultiPublisher):
    PLACED = EventPublication("order_placed", Placed)
    SHIPPED = EventPublication(Tags.SHIPPED, Shipped)
    REFUNDED = EventPublication(7, Refunded)


class Outlet(Shop):
    CLEARANCE = EventPublication("clearance", Placed)


class Overriding(Shop):
    # Same attribute name as the parent: the child's declaration wins.
    PLACED = EventPublication("outlet_placed", Placed)


UNDECLARED = EventPublication("undeclared", Placed)


# --- declarations -----------------------------------------------------------


def test_definitions_from_class_attributes() -> None:
    assert Shop.get_event_definitions() == {
        "PLACED": Shop.PLACED,
        "SHIPPED": Shop.SHIPPED,
        "REFUNDED": Shop.REFUNDED,
    }


def test_definitions_are_inherited() -> None:
    definitions = Outlet.get_event_definitions()
    assert definitions["CLEARANCE"] is Outlet.CLEARANCE
    assert definitions["PLACED"] is Shop.PLACED
    assert set(definitions) == {"PLACED", "SHIPPED", "REFUNDED", "CLEARANCE"}
    # The parent does not see the child's publications.
    assert "CLEARANCE" not in Shop.get_event_definitions()
    assert Outlet.is_publication_valid(Shop.PLACED)
    assert not Shop.is_publication_valid(Outlet.CLEARANCE, raise_error=False)


def test_child_overrides_parent_declaration() -> None:
    assert Overriding.get_event_definitions()["PLACED"] is Overriding.PLACED
    assert not Overriding.is_publication_valid(Shop.PLACED, raise_error=False)


def test_is_publication_valid_raises_or_returns() -> None:
    assert Shop.is_publication_valid(Shop.PLACED) is True
    assert Shop.is_publication_valid(UNDECLARED, raise_error=False) is False
    with pytest.raises(ValueError, match="Shop"):
        Shop.is_publication_valid(UNDECLARED)


@pytest.mark.parametrize(
    ("tag", "attribute"),
    [
        ("order_placed", "PLACED"),
        ("ORDER_PLACED", "PLACED"),
        ("Order_Placed", "PLACED"),
        (Tags.SHIPPED, "SHIPPED"),
        ("Tags.SHIPPED", "SHIPPED"),  # already normalized
        (7, "REFUNDED"),
    ],
)
def test_get_event_definition_by_tag(tag: Any, attribute: str) -> None:
    assert Shop.get_event_definition_by_tag(tag) is getattr(Shop, attribute)


def test_get_event_definition_by_tag_does_not_confuse_enum_with_value() -> None:
    # Tags.SHIPPED has value 1, and Shop has no tag 1.
    with pytest.raises(ValueError, match="tag"):
        Shop.get_event_definition_by_tag(1)


def test_get_event_definition_by_unknown_tag_raises() -> None:
    with pytest.raises(ValueError, match="nope"):
        Shop.get_event_definition_by_tag("nope")
    with pytest.raises(ValueError, match="tag"):
        Shop.get_event_definition_by_tag(1.5)  # type: ignore[arg-type]


def test_get_event_definition_by_tag_rejects_bool_like_normalize() -> None:
    """``True == 1``, but a bool is not a valid tag (normalize_event_tag rejects it)."""

    class Counted(MultiPublisher):
        ONE = EventPublication(1, Placed)

    assert Counted.get_event_definition_by_tag(1) is Counted.ONE
    with pytest.raises(ValueError, match="tag"):
        Counted.get_event_definition_by_tag(True)
    with pytest.raises(ValueError, match="tag"):
        Counted.get_event_definition_by_tag(1.0)  # type: ignore[arg-type]


def test_duplicate_normalized_tags_are_rejected_by_lookup() -> None:
    class Duplicated(MultiPublisher):
        FIRST = EventPublication("dup", Placed)
        SECOND = EventPublication("DUP", Shipped)

    with pytest.raises(ValueError, match="DUP"):
        Duplicated.get_event_definition_by_tag("dup")


def test_duplicate_normalized_tags_are_rejected_on_first_use() -> None:
    """The class docstring promises rejection when the class is first used;
    subscribing and publishing are uses."""

    class Duplicated(MultiPublisher):
        FIRST = EventPublication("dup", Placed)
        SECOND = EventPublication("DUP", Shipped)

    publisher = Duplicated()
    with pytest.raises(ValueError, match="DUP"):
        publisher.add_subscriber(Duplicated.FIRST, Recorder())
    with pytest.raises(ValueError, match="DUP"):
        publisher.publish(Duplicated.SECOND, Shipped(1))


def test_duplicates_across_inheritance_are_rejected() -> None:
    class Child(Shop):
        AGAIN = EventPublication("ORDER_PLACED", Placed)

    with pytest.raises(ValueError, match="ORDER_PLACED"):
        Child.get_event_definition_by_tag("order_placed")


# --- subscribing and publishing ---------------------------------------------


def test_publish_reaches_only_that_publications_subscribers() -> None:
    shop = Shop()
    placed, shipped = Recorder(), Recorder()
    shop.add_subscriber(Shop.PLACED, placed)
    shop.add_subscriber(Shop.SHIPPED, shipped)
    shop.publish(Shop.PLACED, Placed(1))
    shop.publish(Shop.SHIPPED, Shipped(2))
    assert placed.calls == [(Placed(1), "ORDER_PLACED", shop)]
    assert shipped.calls == [(Shipped(2), "Tags.SHIPPED", shop)]
    assert shop.get_subscribers(Shop.PLACED) == [placed]
    assert shop.name == "Shop"


def test_caller_override_and_falsy_caller() -> None:
    shop = Shop()
    sub = Recorder()
    shop.add_subscriber(Shop.PLACED, sub)
    marker = object()
    shop.publish(Shop.PLACED, Placed(1), caller=marker)
    shop.publish(Shop.PLACED, Placed(2), caller=0)
    shop.publish(Shop.PLACED, Placed(3), caller=[])
    assert sub.calls[0][2] is marker
    assert sub.calls[1][2] == 0
    assert sub.calls[2][2] == []


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_publish_undeclared_publication_raises() -> None:
    shop = Shop()
    with pytest.raises(ValueError, match="not declared"):
        shop.publish(UNDECLARED, Placed(1))
    shop.add_subscriber(Shop.PLACED, Recorder())
    with pytest.raises(ValueError, match="not declared"):
        shop.publish(UNDECLARED, Placed(1))


def test_subscribing_to_undeclared_publication_raises() -> None:
    shop = Shop()
    with pytest.raises(ValueError, match="not declared"):
        shop.add_subscriber(UNDECLARED, Recorder())
    with pytest.raises(ValueError, match="not declared"):
        shop.remove_subscriber(UNDECLARED, Recorder())
    with pytest.raises(ValueError, match="not declared"):
        shop.get_subscribers(UNDECLARED)


def test_publish_wrong_type_raises_even_without_subscribers() -> None:
    shop = Shop()
    with pytest.raises(ValueError, match="Shipped"):
        shop.publish(Shop.PLACED, Shipped(1))
    shop.publish(Shop.PLACED, Placed(1))  # the right type and no one listening: fine


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_publish_wrong_type_raises_with_subscribers() -> None:
    shop = Shop()
    sub = Recorder()
    shop.add_subscriber(Shop.PLACED, sub)
    with pytest.raises(ValueError, match="Placed"):
        shop.publish(Shop.PLACED, Shipped(1))
    assert sub.calls == []


def test_remove_subscriber() -> None:
    shop = Shop()
    a, b = Recorder(), Recorder()
    shop.add_subscriber(Shop.PLACED, a)
    shop.add_subscriber(Shop.PLACED, b)
    shop.remove_subscriber(Shop.PLACED, a)
    shop.remove_subscriber(Shop.PLACED, a)  # again: ignored
    shop.remove_subscriber(Shop.SHIPPED, a)  # never subscribed: ignored
    shop.publish(Shop.PLACED, Placed(1))
    assert a.calls == []
    assert len(b.calls) == 1
    shop.remove_subscriber(Shop.PLACED, b)
    assert shop.get_subscribers(Shop.PLACED) == []
    shop.publish(Shop.PLACED, Placed(2))
    assert len(b.calls) == 1


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_subscribers_are_weak() -> None:
    shop = Shop()
    sub = Recorder()
    calls = sub.calls
    shop.add_subscriber(Shop.PLACED, sub)
    del sub
    gc.collect()
    shop.publish(Shop.PLACED, Placed(1))
    assert calls == []
    assert shop.get_subscribers(Shop.PLACED) == []


def test_raising_subscriber_is_isolated() -> None:
    shop = Shop()
    boom, ok = Exploding(), Recorder()
    shop.add_subscriber(Shop.PLACED, boom)
    shop.add_subscriber(Shop.PLACED, ok)
    shop.publish(Shop.PLACED, Placed(1))
    assert len(ok.calls) == 1


# --- callbacks --------------------------------------------------------------


def test_add_subscriber_with_callback_keeps_wrapper_alive() -> None:
    shop = Shop()
    received: list[Any] = []

    def on_placed(event: Any, tag: Any, caller: Any) -> None:
        received.append((event, tag, caller))

    shop.add_subscriber_with_callback(Shop.PLACED, on_placed)
    gc.collect()
    shop.publish(Shop.PLACED, Placed(1))
    assert received == [(Placed(1), "ORDER_PLACED", shop)]


def test_add_subscriber_with_callback_without_event_info() -> None:
    shop = Shop()
    received: list[Any] = []
    shop.add_subscriber_with_callback(
        Shop.PLACED, received.append, with_event_info=False
    )
    shop.publish(Shop.PLACED, Placed(1))
    assert received == [Placed(1)]


def test_add_subscriber_with_callback_is_idempotent() -> None:
    shop = Shop()
    received: list[Any] = []
    callback = received.append
    shop.add_subscriber_with_callback(Shop.PLACED, callback, with_event_info=False)
    shop.add_subscriber_with_callback(Shop.PLACED, callback, with_event_info=False)
    shop.publish(Shop.PLACED, Placed(1))
    assert received == [Placed(1)]
    assert len(shop.get_subscribers(Shop.PLACED)) == 1


def test_same_callback_on_two_publications_is_independent() -> None:
    shop = Shop()
    received: list[Any] = []
    shop.add_subscriber_with_callback(Shop.PLACED, received.append, False)
    shop.add_subscriber_with_callback(Shop.SHIPPED, received.append, False)
    shop.remove_subscriber_with_callback(Shop.PLACED, received.append)
    shop.publish(Shop.PLACED, Placed(1))
    shop.publish(Shop.SHIPPED, Shipped(1))
    assert received == [Shipped(1)]


def test_remove_subscriber_with_callback() -> None:
    shop = Shop()
    received: list[Any] = []
    shop.add_subscriber_with_callback(Shop.PLACED, received.append, False)
    shop.remove_subscriber_with_callback(Shop.PLACED, received.append)
    shop.remove_subscriber_with_callback(Shop.PLACED, received.append)  # ignored
    shop.publish(Shop.PLACED, Placed(1))
    assert received == []
    assert shop.get_subscribers(Shop.PLACED) == []
    # It can be added again afterwards.
    shop.add_subscriber_with_callback(Shop.PLACED, received.append, False)
    shop.publish(Shop.PLACED, Placed(2))
    assert received == [Placed(2)]


def test_callback_on_undeclared_publication_raises() -> None:
    with pytest.raises(ValueError, match="not declared"):
        Shop().add_subscriber_with_callback(UNDECLARED, print)


# --- brokers ----------------------------------------------------------------


def test_broker_sees_publication_without_local_subscribers() -> None:
    broker = RecordingBroker()
    shop = Shop(broker=broker)
    assert shop.broker is broker
    shop.publish(Shop.REFUNDED, Refunded(1, 2.5))
    assert broker.of_kind("publish") == [("publish", "7", Refunded(1, 2.5), 7, shop)]


def test_broker_path_still_checks_type_and_declaration() -> None:
    broker = RecordingBroker()
    shop = Shop(broker=broker)
    with pytest.raises(ValueError, match="Shipped"):
        shop.publish(Shop.PLACED, Shipped(1))
    with pytest.raises(ValueError, match="not declared"):
        shop.publish(UNDECLARED, Placed(1))
    assert broker.of_kind("publish") == []


def test_broker_subscriptions_use_the_publication_channel() -> None:
    broker = RecordingBroker()
    shop = Shop(broker=broker)
    sub = Recorder()
    shop.add_subscriber(Shop.SHIPPED, sub)
    assert broker.calls == [("subscribe", "Tags.SHIPPED", sub)]
    shop.publish(Shop.SHIPPED, Shipped(3))
    assert sub.calls == [(Shipped(3), "Tags.SHIPPED", shop)]
    shop.remove_subscriber(Shop.SHIPPED, sub)
    assert broker.calls[-1] == ("unsubscribe", "Tags.SHIPPED", sub)


def test_setting_broker_migrates_every_publication() -> None:
    shop = Shop()
    placed, shipped = Recorder(), Recorder()
    shop.add_subscriber(Shop.PLACED, placed)
    shop.add_subscriber(Shop.SHIPPED, shipped)
    broker = LocalBroker()
    shop.broker = broker
    assert shop.broker is broker
    assert broker.subscriber_count("ORDER_PLACED") == 1
    assert broker.subscriber_count("Tags.SHIPPED") == 1
    shop.publish(Shop.PLACED, Placed(1))
    assert len(placed.calls) == 1
    # Publications subscribed later also use the new broker.
    refunds = Recorder()
    shop.add_subscriber(Shop.REFUNDED, refunds)
    assert broker.subscriber_count("7") == 1
    shop.broker = None
    assert broker.channels() == []
    shop.publish(Shop.PLACED, Placed(2))
    assert len(placed.calls) == 2


def test_two_multipublishers_share_a_local_broker() -> None:
    broker = LocalBroker()
    east, west = Shop(broker=broker), Shop(broker=broker)
    sub = Recorder()
    west.add_subscriber(Shop.PLACED, sub)
    east.publish(Shop.PLACED, Placed(1))
    assert sub.calls == [(Placed(1), "ORDER_PLACED", east)]
