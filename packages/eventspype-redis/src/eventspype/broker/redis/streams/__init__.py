"""Redis Streams: ``RedisStreamBroker``, at-least-once per consumer group."""
