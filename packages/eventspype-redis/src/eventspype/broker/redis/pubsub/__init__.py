"""Redis Pub/Sub: ``RedisBroker`` (a thread), ``AsyncRedisBroker`` (asyncio).

On Redis Cluster both use sharded Pub/Sub (``sharded``).
"""
