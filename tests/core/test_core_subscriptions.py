"""EventSubscription, PublicationSubscription and MultiSubscriber."""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest
from _core_support import PLACED, Placed, Refunded, Shipped, Tags

from eventspype import (
    EventPublication,
    EventPublisher,
    EventSubscription,
    FunctionalEventSubscriber,
    MultiPublisher,
    MultiSubscriber,
    PublicationSubscription,
)


class Shop(MultiPublisher):
    PLACED = EventPublication("order_placed", Placed)
    SHIPPED = EventPublication(Tags.SHIPPED, Shipped)
    REFUNDED = EventPublication(7, Refunded)


class OtherShop(MultiPublisher):
    PLACED = EventPublication("order_placed", Placed)


def _lambda_handler(self: Any, event: Any) -> None:
    self.got.append(("module-function", event))


class Audit(MultiSubscriber):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[Any] = []

    def on_placed(self, event: Any) -> None:
        self.got.append(("placed", event))

    def on_any(self, event: Any, tag: Any, caller: Any) -> None:
        self.got.append(("any", event, tag, caller))

    placed = EventSubscription(
        Shop, "order_placed", on_placed, callback_with_event_info=False
    )
    several = EventSubscription(Shop, ["order_placed", Tags.SHIPPED, 7], on_any)
    anonymous = EventSubscription(
        Shop,
        "order_placed",
        lambda self, event: self.got.append(("lambda", event)),
        callback_with_event_info=False,
    )
    single = EventSubscription(
        EventPublisher, "order_placed", on_placed, callback_with_event_info=False
    )
    shipped_only = PublicationSubscription(
        Shop, Shop.SHIPPED, on_any, callback_with_event_info=True
    )


class LoudAudit(Audit):
    def on_placed(self, event: Any) -> None:
        self.got.append(("loud", event))


# --- MultiSubscriber + EventSubscription ------------------------------------


def test_definitions_are_collected_and_inherited() -> None:
    names = set(Audit.get_event_definitions())
    assert names == {"placed", "several", "anonymous", "single", "shipped_only"}
    assert LoudAudit.get_event_definitions()["placed"] is Audit.placed


def test_subscription_to_multipublisher() -> None:
    shop, audit = Shop(), Audit()
    audit.add_subscription(Audit.placed, shop)
    gc.collect()  # the created subscribers are kept alive by the MultiSubscriber
    shop.publish(Shop.PLACED, Placed(1))
    assert audit.got == [("placed", Placed(1))]


def test_subclass_override_of_handler_is_used() -> None:
    shop, audit = Shop(), LoudAudit()
    audit.add_subscription(LoudAudit.placed, shop)
    shop.publish(Shop.PLACED, Placed(1))
    assert audit.got == [("loud", Placed(1))]


def test_lambda_callback_gets_the_subscriber_via_partial() -> None:
    shop, audit = Shop(), Audit()
    audit.add_subscription(Audit.anonymous, shop)
    shop.publish(Shop.PLACED, Placed(2))
    assert audit.got == [("lambda", Placed(2))]


def test_list_of_tags_subscribes_each_publication() -> None:
    shop, audit = Shop(), Audit()
    audit.add_subscription(Audit.several, shop)
    shop.publish(Shop.PLACED, Placed(1))
    shop.publish(Shop.SHIPPED, Shipped(2))
    shop.publish(Shop.REFUNDED, Refunded(3, 1.0))
    assert audit.got == [
        ("any", Placed(1), "ORDER_PLACED", shop),
        ("any", Shipped(2), "Tags.SHIPPED", shop),
        ("any", Refunded(3, 1.0), 7, shop),
    ]
    created = audit.subscribers[shop][Audit.several]
    assert len(created) == 3
    assert all(isinstance(s, FunctionalEventSubscriber) for s in created)


def test_publication_subscription() -> None:
    shop, audit = Shop(), Audit()
    audit.add_subscription(Audit.shipped_only, shop)
    shop.publish(Shop.PLACED, Placed(1))
    shop.publish(Shop.SHIPPED, Shipped(2))
    assert audit.got == [("any", Shipped(2), "Tags.SHIPPED", shop)]
    assert Audit.shipped_only.event_publication is Shop.SHIPPED


def test_subscription_to_event_publisher() -> None:
    publisher, audit = EventPublisher(PLACED), Audit()
    audit.add_subscription(Audit.single, publisher)
    publisher.publish(Placed(4))
    assert audit.got == [("placed", Placed(4))]


def test_add_twice_is_noop() -> None:
    shop, audit = Shop(), Audit()
    audit.add_subscription(Audit.placed, shop)
    audit.add_subscription(Audit.placed, shop)
    shop.publish(Shop.PLACED, Placed(1))
    assert audit.got == [("placed", Placed(1))]
    assert len(shop.get_subscribers(Shop.PLACED)) == 1


def test_same_subscription_on_two_publishers() -> None:
    first, second, audit = Shop(), Shop(), Audit()
    audit.add_subscription(Audit.placed, first)
    audit.add_subscription(Audit.placed, second)
    first.publish(Shop.PLACED, Placed(1))
    second.publish(Shop.PLACED, Placed(2))
    assert audit.got == [("placed", Placed(1)), ("placed", Placed(2))]


def test_remove_subscription() -> None:
    shop, audit = Shop(), Audit()
    audit.add_subscription(Audit.several, shop)
    audit.add_subscription(Audit.placed, shop)
    audit.remove_subscription(Audit.several, shop)
    shop.publish(Shop.PLACED, Placed(1))
    shop.publish(Shop.SHIPPED, Shipped(1))
    assert audit.got == [("placed", Placed(1))]
    assert shop.get_subscribers(Shop.SHIPPED) == []
    audit.remove_subscription(Audit.placed, shop)
    assert audit.subscribers == {}
    shop.publish(Shop.PLACED, Placed(2))
    assert audit.got == [("placed", Placed(1))]
    # Unknown pairs are ignored.
    audit.remove_subscription(Audit.placed, shop)
    audit.remove_subscription(Audit.placed, Shop())


def test_remove_then_add_again() -> None:
    shop, audit = Shop(), Audit()
    audit.add_subscription(Audit.placed, shop)
    audit.remove_subscription(Audit.placed, shop)
    audit.add_subscription(Audit.placed, shop)
    shop.publish(Shop.PLACED, Placed(1))
    assert audit.got == [("placed", Placed(1))]


def test_undeclared_subscription_is_rejected() -> None:
    stray = EventSubscription(
        Shop, "order_placed", print, callback_with_subscriber=False
    )
    with pytest.raises(ValueError, match="not declared"):
        Audit().add_subscription(stray, Shop())
    with pytest.raises(ValueError, match="not declared"):
        Audit().remove_subscription(stray, Shop())


def test_publisher_type_mismatch_raises() -> None:
    audit = Audit()
    with pytest.raises(ValueError, match="Shop"):
        audit.add_subscription(Audit.placed, OtherShop())
    with pytest.raises(ValueError, match="EventPublisher"):
        audit.add_subscription(Audit.single, Shop())
    with pytest.raises(ValueError, match="Shop"):
        Audit.placed.subscribe(EventPublisher(PLACED), audit)
    assert audit.subscribers == {}


def test_missing_subscriber_raises() -> None:
    with pytest.raises(ValueError, match="subscriber"):
        Audit.placed.subscribe(Shop(), None)
    with pytest.raises(ValueError, match="subscriber"):
        Audit.placed(Shop())


def test_undeclared_tag_on_multipublisher_raises() -> None:
    subscription = EventSubscription(
        Shop, "unknown", print, callback_with_subscriber=False
    )
    with pytest.raises(ValueError, match="tag"):
        subscription.subscribe(Shop(), None)


# --- EventSubscription on its own -------------------------------------------


def test_subscription_without_subscriber_calls_plain_function() -> None:
    received: list[Any] = []
    subscription = EventSubscription(
        Shop,
        "order_placed",
        received.append,
        callback_with_subscriber=False,
        callback_with_event_info=False,
    )
    shop = Shop()
    created = subscription(shop)
    shop.publish(Shop.PLACED, Placed(1))
    assert received == [Placed(1)]
    subscription.unsubscribe(shop, created[0])
    shop.publish(Shop.PLACED, Placed(2))
    assert received == [Placed(1)]


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_subscription_returns_subscribers_the_caller_must_keep() -> None:
    received: list[Any] = []
    subscription = EventSubscription(
        Shop, "order_placed", received.append, False, False
    )
    shop = Shop()
    subscription.subscribe(shop, None)  # result dropped: held weakly only
    gc.collect()
    shop.publish(Shop.PLACED, Placed(1))
    assert received == []


def test_module_level_function_with_subscriber_uses_partial() -> None:
    class Holder:
        def __init__(self) -> None:
            self.got: list[Any] = []

    subscription = EventSubscription(
        Shop, "order_placed", _lambda_handler, callback_with_event_info=False
    )
    holder = Holder()
    shop = Shop()
    keep = subscription.subscribe(shop, holder)
    shop.publish(Shop.PLACED, Placed(1))
    assert holder.got == [("module-function", Placed(1))]
    assert keep


def test_subscription_properties() -> None:
    assert Audit.placed.publisher_class is Shop
    assert Audit.placed.event_tag == "order_placed"
    assert Audit.placed.callback_with_subscriber is True
    assert Audit.several.event_tag_str.startswith("[")
    assert hash(Audit.placed) == hash(Audit.placed)


def test_subscription_validates_publisher_class_and_tags() -> None:
    with pytest.raises(
        ValueError,
        match=r"^Publisher class must be a subclass of EventPublisher or Multi",
    ):
        EventSubscription(object, "x", print)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"^Publisher class must be a subclass of MultiPublisher"
    ):
        PublicationSubscription(EventPublisher, PLACED, print)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tag"):
        EventSubscription(Shop, 1.5, print)  # type: ignore[arg-type]


# --- log_event --------------------------------------------------------------


class LoggedAudit(MultiSubscriber):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[Any] = []

    def logger(self) -> logging.Logger:
        return logging.getLogger("tests.core.logged_audit")

    @MultiSubscriber.log_event(log_level=logging.WARNING, log_prefix="Audit")
    def on_placed(self, event: Any) -> None:
        self.got.append(event)

    placed = EventSubscription(
        Shop, "order_placed", on_placed, callback_with_event_info=False
    )


def test_log_event_logs_then_calls(caplog: pytest.LogCaptureFixture) -> None:
    shop, audit = Shop(), LoggedAudit()
    audit.add_subscription(LoggedAudit.placed, shop)
    with caplog.at_level(logging.WARNING, logger="tests.core.logged_audit"):
        shop.publish(Shop.PLACED, Placed(9))
    assert audit.got == [Placed(9)]
    (record,) = [r for r in caplog.records if r.name == "tests.core.logged_audit"]
    assert record.levelno == logging.WARNING
    assert "[Audit]" in record.getMessage()
    assert str(Placed(9)) in record.getMessage()
    assert LoggedAudit.on_placed.__name__ == "on_placed"  # functools.wraps


def test_log_event_defaults_to_info(caplog: pytest.LogCaptureFixture) -> None:
    class Default(LoggedAudit):
        @MultiSubscriber.log_event()
        def handle(self, event: Any) -> None:
            self.got.append(event)

    audit = Default()
    with caplog.at_level(logging.DEBUG, logger="tests.core.logged_audit"):
        audit.handle("x")
    (record,) = [r for r in caplog.records if r.name == "tests.core.logged_audit"]
    assert record.levelno == logging.INFO
    assert "[Event] x" in record.getMessage()


def test_logger_must_be_overridden() -> None:
    with pytest.raises(NotImplementedError):
        Audit().logger()
