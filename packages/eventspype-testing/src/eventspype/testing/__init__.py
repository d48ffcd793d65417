"""Test code that publishes and subscribes with eventspype.

Provided by the eventspype-testing distribution:

- :class:`EventRecorder`: record what a publisher or broker carried, with
  assertions whose failure message shows what was published instead;
- :class:`TestBroker`: a broker for unit tests that serializes every event as
  a Redis broker would and raises a subscriber's exception in the test;
- :mod:`eventspype.testing.conformance`: ``BrokerContract``, the contract
  every ``MessageBroker`` keeps, as a pytest class to subclass;
- :mod:`eventspype.testing.plugin`: pytest fixtures (``event_recorder``,
  ``test_broker``, ``redis_url``, ``fake_redis``), loaded automatically.
"""

from eventspype.testing._version import __version__
from eventspype.testing.broker import SubscriberFailure, TestBroker
from eventspype.testing.recorder import EventRecorder, RecordedEvent

__all__ = [
    "EventRecorder",
    "RecordedEvent",
    "SubscriberFailure",
    "TestBroker",
    "__version__",
]
