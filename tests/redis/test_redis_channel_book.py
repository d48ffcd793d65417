"""The Pub/Sub bookkeeping on its own (no I/O): which reply answers what."""

from __future__ import annotations

import redis

from eventspype.broker.redis.pubsub.channel_book import ChannelBook, SubscriptionRefused


def test_one_command_per_channel_and_an_error_refuses_only_its_channel() -> None:
    book = ChannelBook()
    waiters = {c: book.want(c) for c in (b"a", b"b", b"c")}
    assert book.commands() == [
        ("SUBSCRIBE", b"a"),
        ("SUBSCRIBE", b"b"),
        ("SUBSCRIBE", b"c"),
    ]
    assert book.answered(b"subscribe", b"a") == [waiters[b"a"]]
    kind, channel, refused = book.error_reply(redis.exceptions.NoPermissionError("no"))
    assert (kind, channel, refused) == (b"subscribe", b"b", [waiters[b"b"]])
    assert book.answered(b"subscribe", b"c") == [waiters[b"c"]]

    refusal = waiters[b"b"].refused
    assert isinstance(refusal, SubscriptionRefused)
    assert refusal.channel == "b"
    assert refusal.reason == "NoPermissionError: no"
    assert list(book.wanted) == [b"a", b"c"]
    assert book.subscribed() == 2
    assert book.missing() == []
    assert book.commands() == []  # nothing to resend: b is not wanted any more


def test_asking_again_for_a_refused_channel_tries_again() -> None:
    book = ChannelBook()
    book.want(b"x")
    book.commands()
    book.error_reply(redis.ResponseError("NOPERM"))
    assert b"x" in book.refused
    waiter = book.want(b"x")
    assert waiter is not None
    assert b"x" not in book.refused
    assert book.commands() == [("SUBSCRIBE", b"x")]


def test_a_ping_between_subscriptions_keeps_the_order() -> None:
    book = ChannelBook()
    book.want(b"a")
    book.commands()
    assert book.ping() == ("PING",)
    book.want(b"b")
    book.commands()
    assert book.answered(b"subscribe", b"a")
    kind, _, _ = book.error_reply(redis.ResponseError("NOPERM ping"))
    assert kind == b"ping"  # refused PING, not b
    assert book.answered(b"subscribe", b"b")
    assert book.subscribed() == 2


def test_unwanted_then_unsubscribed_leaves_the_connection_idle() -> None:
    book = ChannelBook()
    book.want(b"a")
    book.commands()
    book.answered(b"subscribe", b"a")
    book.unwant(b"a")
    assert book.commands() == [("UNSUBSCRIBE", b"a")]
    assert not book.idle
    book.answered(b"unsubscribe", b"a")
    assert book.idle
