"""The conformance kit fails brokers that break the contract: each broken
broker below breaks one rule, and the contract test of that rule fails."""

from __future__ import annotations

import pytest

BROKEN = """
import threading
import pytest
from eventspype import LocalBroker, MessageBroker
from eventspype.testing.conformance import BrokerContract


class Base(MessageBroker):
    def __init__(self):
        self.local = LocalBroker()

    def publish(self, channel, event, event_tag, caller):
        self.local.publish(channel, event, event_tag, caller)

    def subscribe(self, channel, subscriber):
        self.local.subscribe(channel, subscriber)

    def unsubscribe(self, channel, subscriber):
        self.local.unsubscribe(channel, subscriber)


class StrongReferences(Base):
    def subscribe(self, channel, subscriber):
        self.__dict__.setdefault("kept", []).append(subscriber)
        super().subscribe(channel, subscriber)


class NoIsolation(Base):
    def publish(self, channel, event, event_tag, caller):
        for ref in self.local._channels.get(channel, None).snapshot:
            ref().call(event, event_tag, caller)


class EveryChannel(Base):
    def publish(self, channel, event, event_tag, caller):
        for name in self.local.channels():
            self.local.publish(name, event, event_tag, caller)


class Reversed(Base):
    def __init__(self):
        super().__init__()
        self.held = []

    def publish(self, channel, event, event_tag, caller):
        self.held.append((channel, event, event_tag, caller))
        if len(self.held) == 50:
            for item in reversed(self.held):
                self.local.publish(*item)


class IgnoresUnsubscribe(Base):
    def unsubscribe(self, channel, subscriber):
        pass


class LeavesThread(Base):
    def subscribe(self, channel, subscriber):
        self.stop = threading.Event()
        threading.Thread(target=self.stop.wait, args=(30,), daemon=True).start()
        super().subscribe(channel, subscriber)

    def close(self):
        pass


class TestBROKEN(BrokerContract):
    delivery_timeout = 2.0
    @pytest.fixture
    def broker(self):
        broker = BROKEN()
        yield broker
        getattr(broker, "stop", threading.Event()).set()
"""

CASES = [
    ("StrongReferences", "test_a_dropped_subscriber_stops_receiving_and_is_not_kept"),
    ("NoIsolation", "test_a_failing_subscriber_does_not_stop_the_others"),
    ("EveryChannel", "test_channels_are_isolated"),
    ("Reversed", "test_one_publishers_events_arrive_in_order"),
    ("IgnoresUnsubscribe", "test_unsubscribed_subscribers_receive_nothing_more"),
    ("LeavesThread", "test_close_releases_everything"),
]


@pytest.mark.parametrize(("broken", "failing_test"), CASES)
def test_the_contract_fails_a_broken_broker(
    pytester: pytest.Pytester, broken: str, failing_test: str
) -> None:
    source = BROKEN.replace("BROKEN()", f"{broken}()").replace("BROKEN", broken)
    pytester.makepyfile(test_broken=source)
    pytester.makeini("[pytest]\naddopts = -p no:asyncio -p no:cacheprovider\n")
    result = pytester.runpytest_inprocess(
        "-k", failing_test, "-o", "python_classes=Test*"
    )
    result.assert_outcomes(failed=1)


def test_a_broker_fixture_must_be_provided(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_missing="""
        from eventspype.testing.conformance import BrokerContract

        class TestForgotten(BrokerContract):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:asyncio", "-k", "tag")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*must override the `broker` fixture*"])
