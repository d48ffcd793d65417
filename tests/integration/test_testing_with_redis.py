"""eventspype-testing with the Redis brokers: the recorder receives events
another process published, the plugin's Redis fixtures work, and the
fixtures' own server is the one the tests asked for."""

from __future__ import annotations

from typing import Any

import fakeredis
import redis
from _redis_support import unique_prefix
from redis_helpers import finish, peer, reap
from redis_peer_events import ShipmentEvent, make_event

from eventspype import EventPublication, EventPublisher
from eventspype.broker.redis import RedisBroker
from eventspype.testing import EventRecorder


def test_the_recorder_gets_what_another_process_published(redis_url: str) -> None:
    prefix = unique_prefix()
    shipped = EventPublication("shipped", ShipmentEvent)
    with RedisBroker.from_url(redis_url, channel_prefix=prefix) as broker:
        broker.register_event_class(ShipmentEvent)
        with EventRecorder(broker, shipped) as recorder:
            process = peer("publish", redis_url, prefix, "shipped", 3)
            try:
                finish(process)
            finally:
                reap(process)
            last = recorder.assert_published(make_event(2), timeout=30)
    assert last == make_event(2)
    assert recorder.events(ShipmentEvent) == [make_event(i) for i in range(3)]
    assert {record.caller for record in recorder.records} == {broker}
    assert all(record.thread != "MainThread" for record in recorder.records)


def test_redis_url_is_a_working_server(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
    finally:
        client.close()


def test_fake_redis_is_a_fresh_fakeredis_per_test(fake_redis: Any) -> None:
    assert isinstance(fake_redis, fakeredis.FakeRedis)
    assert fake_redis.dbsize() == 0
    fake_redis.set("left-behind", 1)  # the next test's server is another one


def test_fake_redis_drives_a_broker(fake_redis: Any) -> None:
    assert fake_redis.dbsize() == 0
    publication = EventPublication("shipped", ShipmentEvent)
    prefix = unique_prefix()
    same_server = fakeredis.FakeRedis(connection_pool=fake_redis.connection_pool)
    with (
        RedisBroker(fake_redis, channel_prefix=prefix) as broker,
        RedisBroker(same_server, channel_prefix=prefix) as other,
    ):
        broker.register_event_class(ShipmentEvent)
        with EventRecorder(broker, publication) as recorder:
            EventPublisher(publication, other).publish(make_event(1))
            recorder.assert_published_once(make_event(1), timeout=30)
