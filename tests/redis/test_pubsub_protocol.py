"""The Pub/Sub protocol core on its own (no server, no I/O, no clock).

A model server answers what the protocol sends, in order, as Redis does; a
hypothesis state machine interleaves wanting and unwanting channels, replies,
ACL refusals, messages, disconnects, reconnects and the passing of time, and
checks the protocol's promises after every step.
"""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from eventspype._internal.backoff import Backoff
from eventspype.broker.redis._wire.stats import Counters
from eventspype.broker.redis.pubsub.protocol import PubSubProtocol

CHANNELS = [b"a", b"b", b"c", b"d"]
FORBIDDEN = {b"d"}  # the ACL refuses it
HCI = 2.0


class Waiter:
    def __init__(self) -> None:
        self.settled: list[tuple[bool, tuple[str, str] | None]] = []

    def settle(self, ok: bool, refused: tuple[str, str] | None = None) -> None:
        self.settled.append((ok, refused))


def new_protocol() -> PubSubProtocol:
    return PubSubProtocol(
        Counters(),
        health_check_interval=HCI,
        reconnect_delay=(0.1, 1.0),
        rand=lambda: 0.5,
        wall_clock=lambda: 0.0,
    )


class Connection(RuleBasedStateMachine):
    """The protocol against a model server (see the module docs)."""

    def __init__(self) -> None:
        super().__init__()
        self.proto = new_protocol()
        self.now = 0.0
        self.open = False
        self.server: set[bytes] = set()  # subscribed on the server
        self.replies: deque[tuple[str, bytes | None]] = deque()  # in transit
        self.refused_since_wanted: set[bytes] = set()
        # What the user asked for last: want() adds, unwant() removes. Not
        # the protocol's own `wanted`, which a refusal also empties: after
        # want, unwant, want, the refusal of the first SUBSCRIBE answers the
        # given-up request, and the second one's refusal concerns a channel
        # the user still wants.
        self.intent: set[bytes] = set()
        self.waiters: list[tuple[bytes, Waiter]] = []
        self.checked: set[int] = set()  # waiters whose settlement was checked
        self.heard_pending = False
        # The health rule, kept independently of the protocol.
        self.last_heard = 0.0
        self.ping_at: float | None = None

    # -- the model server --------------------------------------------------

    def send(self, commands: list[tuple[object, ...]]) -> None:
        for command in commands:
            name = command[0]
            if name == "SUBSCRIBE":
                channel = command[1]
                assert isinstance(channel, bytes)
                # A refused channel is never sent again until wanted again.
                assert channel not in self.refused_since_wanted
                if channel in FORBIDDEN:
                    self.replies.append(("error", channel))
                else:
                    self.server.add(channel)
                    self.replies.append(("subscribe", channel))
            elif name == "UNSUBSCRIBE":
                channel = command[1]
                assert isinstance(channel, bytes)
                self.server.discard(channel)
                self.replies.append(("unsubscribe", channel))
            else:
                assert command == ("PING",)
                self.replies.append(("pong", None))

    def heard(self) -> None:
        self.last_heard = self.now
        self.ping_at = None
        self.heard_pending = False

    # -- rules ----------------------------------------------------------------

    @rule(channel=st.sampled_from(CHANNELS))
    def want(self, channel: bytes) -> None:
        waiter = Waiter()
        if self.proto.want(channel, waiter):
            self.waiters.append((channel, waiter))
        self.refused_since_wanted.discard(channel)
        self.intent.add(channel)
        self.send(self.proto.commands())

    @rule(channel=st.sampled_from(CHANNELS))
    def unwant(self, channel: bytes) -> None:
        self.intent.discard(channel)
        self.proto.unwant(channel)
        self.send(self.proto.commands())

    @precondition(lambda self: not self.open)
    @rule()
    def connect(self) -> None:
        self.open = True
        self.heard()
        self.send(self.proto.opened(self.now))

    @precondition(lambda self: not self.open)
    @rule()
    def connect_fails(self) -> None:
        before = self.proto.failures
        self.proto.open_failed(ConnectionError("refused"))
        assert self.proto.failures == before + 1
        ceiling = Backoff(0.1, 1.0).ceiling(self.proto.failures)
        assert ceiling / 2 <= self.proto.next_delay() <= ceiling

    @precondition(lambda self: self.open)
    @rule()
    def disconnect(self) -> None:
        self.open = False
        self.server.clear()
        self.replies.clear()
        self.ping_at = None
        self.proto.lost(ConnectionError("reset"))
        assert not self.proto.live
        assert not self.proto.connected

    @precondition(lambda self: self.open and bool(self.replies))
    @rule()
    def reply(self) -> None:
        kind, channel = self.replies.popleft()
        self.heard()
        if kind == "error":
            assert channel is not None
            was_wanted = channel in self.intent
            self.proto.error_reply(PermissionError("NOPERM"), self.now)
            self.refused_since_wanted.add(channel)
            # Only a refusal of a channel still wanted fails the checks.
            refusal = self.proto.first_refusal()
            if not was_wanted:
                assert refusal is None or refusal[0] != channel.decode()
            assert channel in self.proto.refused
            assert channel not in self.proto.wanted
        elif self.proto.answered(kind.encode(), channel, self.now):
            assert not self.proto.wanted  # unused only when nothing is wanted
        assert self.proto.connected  # an answer on a new connection: healthy
        assert self.proto.failures == 0

    @precondition(lambda self: self.open and bool(self.server))
    @rule(data=st.data())
    def message(self, data: st.DataObject) -> None:
        data.draw(st.sampled_from(sorted(self.server)))
        self.proto.heard()
        # Read at the next tick: the model hears it when the protocol looks.
        self.heard_pending = True

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]))
    def tick(self, seconds: float) -> None:
        self.now += seconds
        if self.heard_pending:
            self.heard()
        verdict = self.proto.tick(self.now)
        expected = None
        if self.open:
            if self.ping_at is not None:
                if self.now - self.ping_at >= self.proto.ping_timeout:
                    expected = "dead"
            elif self.now - self.last_heard >= HCI:
                expected = "ping"
                self.ping_at = self.now
        assert verdict == expected
        if verdict == "ping":
            self.send([self.proto.ping()])
        elif verdict == "dead":
            self.disconnect()

    # -- invariants --------------------------------------------------------------

    @invariant()
    def waiters_are_settled_truthfully(self) -> None:
        # Checked right after the step that settled them.
        for channel, waiter in self.waiters:
            assert len(waiter.settled) <= 1
            if not waiter.settled or id(waiter) in self.checked:
                continue
            self.checked.add(id(waiter))
            ok, refused = waiter.settled[0]
            if ok:  # confirmed, or not wanted any more
                assert channel not in self.proto.wanted or (
                    self.open and channel in self.server
                )
            elif refused is not None:
                assert channel in FORBIDDEN
                assert refused[0] == channel.decode()

    @invariant()
    def every_wanted_channel_is_sent_on_the_connection(self) -> None:
        if not self.open:
            return
        subscribed_or_coming = set(self.server)
        unsubscribing = {c for k, c in self.replies if k == "unsubscribe"}
        for channel in self.proto.wanted:
            assert channel in subscribed_or_coming or channel in FORBIDDEN
        # Nothing unwanted stays subscribed for good.
        for channel in self.server:
            assert channel in self.proto.wanted or channel in unsubscribing

    @invariant()
    def all_replies_read_means_all_confirmed(self) -> None:
        if self.open and not self.replies:
            assert self.proto.missing() == []
            assert self.proto.subscribed() == len(self.proto.wanted)


TestConnection = Connection.TestCase
TestConnection.settings = settings(max_examples=150, stateful_step_count=40)


# -- a few exact cases ----------------------------------------------------------


def test_a_refusal_given_up_no_longer_fails_the_check_but_stays_in_stats() -> None:
    proto = new_protocol()
    proto.want(b"x")
    proto.opened(0.0)
    proto.error_reply(PermissionError("NOPERM"), 0.0)
    assert proto.first_refusal() == ("x", "PermissionError: NOPERM")
    proto.unwant(b"x")  # the subscriber gave it up
    assert proto.first_refusal() is None
    assert proto.state().refused == {"x": "PermissionError: NOPERM"}
    proto.want(b"x")  # asked again: sent again
    assert proto.commands() == [("SUBSCRIBE", b"x")]


def test_a_ping_between_subscriptions_keeps_the_order() -> None:
    proto = new_protocol()
    proto.want(b"a")
    assert proto.opened(0.0) == [("SUBSCRIBE", b"a")]
    assert proto.ping() == ("PING",)
    proto.want(b"b")
    assert proto.commands() == [("SUBSCRIBE", b"b")]
    proto.answered(b"subscribe", b"a", 0.0)
    proto.error_reply(PermissionError("NOPERM ping"), 0.0)  # the PING's
    proto.answered(b"subscribe", b"b", 0.0)
    assert proto.subscribed() == 2
    assert proto.counters.subscribe_refusals == 0


def test_the_connection_is_healthy_only_once_redis_answers() -> None:
    proto = new_protocol()
    proto.want(b"a")
    proto.open_failed(ConnectionError("down"))
    proto.opened(1.0)
    assert proto.failures == 1
    assert not proto.connected
    proto.lost(ConnectionError("LOADING"))
    assert proto.failures == 2
    proto.opened(2.0)
    proto.answered(b"subscribe", b"a", 2.0)
    assert proto.failures == 0
    assert proto.connected
    assert proto.counters.reconnects == 0  # never connected before: not a "re"


@given(st.floats(min_value=0.01, max_value=100))
def test_one_health_rule_whatever_the_interval(hci: float) -> None:
    proto = PubSubProtocol(
        Counters(), health_check_interval=hci, reconnect_delay=(1, 2)
    )
    proto.opened(0.0)
    assert proto.wait_time(0.0) == pytest.approx(hci)
    assert proto.tick(hci / 2) is None
    assert proto.tick(hci) == "ping"
    timeout = max(hci, 1.0)
    assert proto.wait_time(hci) == pytest.approx(timeout)
    assert proto.tick(hci + timeout / 2) is None
    assert proto.tick(hci + timeout * 1.000001) == "dead"


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="health_check_interval"):
        PubSubProtocol(Counters(), health_check_interval=0, reconnect_delay=(1, 2))
    with pytest.raises(ValueError, match="reconnect_delay"):
        PubSubProtocol(Counters(), health_check_interval=1, reconnect_delay=(2, 1))


def test_the_protocol_module_does_no_io() -> None:
    import ast
    import inspect

    from eventspype.broker.redis.pubsub import protocol

    tree = ast.parse(inspect.getsource(protocol))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{a.name}" for a in node.names)
    for banned in ("redis", "socket", "threading", "asyncio", "time.sleep"):
        assert not any(n == banned or n.startswith(banned + ".") for n in imported)
    assert "sleep" not in inspect.getsource(protocol)
