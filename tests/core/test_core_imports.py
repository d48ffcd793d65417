"""The public import surface of eventspype-core, lazy re-exports of optional
distributions, and the absence of third-party runtime dependencies."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys

import pytest

import eventspype


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


SERIALIZERS_INSTALLED = _installed("eventspype.serializers")
REDIS_INSTALLED = _installed("eventspype.broker.redis")

needs_no_serializers = pytest.mark.skipif(
    SERIALIZERS_INSTALLED, reason="eventspype-serializers is installed"
)
needs_no_redis = pytest.mark.skipif(
    REDIS_INSTALLED, reason="eventspype-redis is installed"
)

SERIALIZER_NAMES = [
    "EventSerializer",
    "JsonEventSerializer",
    "MsgpackEventSerializer",
    "SerializationError",
]


# --- lazy re-exports --------------------------------------------------------


@needs_no_serializers
@pytest.mark.parametrize("name", SERIALIZER_NAMES)
def test_from_eventspype_import_serializer_names_says_what_to_install(
    name: str,
) -> None:
    with pytest.raises(ImportError) as info:
        exec(f"from eventspype import {name}", {})
    message = str(info.value)
    assert name in message
    assert "eventspype-serializers" in message
    assert "pip install eventspype-serializers" in message


@needs_no_serializers
@pytest.mark.parametrize("name", SERIALIZER_NAMES)
def test_attribute_access_to_serializer_names_says_what_to_install(name: str) -> None:
    with pytest.raises(ImportError, match="pip install eventspype-serializers"):
        getattr(eventspype, name)


REDIS_BROKER_NAMES = [
    "RedisBroker",
    "AsyncRedisBroker",
    "RedisStreamBroker",
    "AsyncRedisStreamBroker",
]


@needs_no_redis
@pytest.mark.parametrize("name", REDIS_BROKER_NAMES)
def test_from_eventspype_broker_import_redis_brokers_says_what_to_install(
    name: str,
) -> None:
    with pytest.raises(ImportError) as info:
        exec(f"from eventspype.broker import {name}", {})
    message = str(info.value)
    assert name in message
    assert "eventspype-redis" in message
    assert "pip install eventspype-redis" in message


@pytest.mark.skipif(not REDIS_INSTALLED, reason="eventspype-redis is not installed")
@pytest.mark.parametrize("name", REDIS_BROKER_NAMES)
def test_eventspype_broker_lends_every_redis_broker(name: str) -> None:
    broker_package = importlib.import_module("eventspype.broker")
    redis_package = importlib.import_module("eventspype.broker.redis")
    assert getattr(broker_package, name) is getattr(redis_package, name)
    assert name in dir(broker_package)


@needs_no_serializers
@pytest.mark.parametrize("name", ["EventSerializer", "JsonEventSerializer"])
def test_from_eventspype_broker_import_serializers_says_what_to_install(
    name: str,
) -> None:
    with pytest.raises(ImportError, match="pip install eventspype-serializers"):
        exec(f"from eventspype.broker import {name}", {})


@needs_no_redis
def test_import_eventspype_broker_redis_fails_cleanly() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("eventspype.broker.redis")


def test_unknown_attribute_is_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchName"):
        eventspype.NoSuchName  # noqa: B018
    assert not hasattr(eventspype, "NoSuchName")
    broker_package = importlib.import_module("eventspype.broker")
    with pytest.raises(AttributeError, match="NoSuchName"):
        broker_package.NoSuchName  # noqa: B018


def test_star_import_works_and_excludes_lazy_names() -> None:
    namespace: dict[str, object] = {}
    exec("from eventspype import *", namespace)
    exported = set(namespace) - {"__builtins__"}
    assert exported == set(eventspype.__all__)
    for name in SERIALIZER_NAMES:
        assert name not in eventspype.__all__
        assert name not in exported


def test_broker_star_import_works() -> None:
    namespace: dict[str, object] = {}
    exec("from eventspype.broker import *", namespace)
    assert {"LocalBroker", "MessageBroker"} <= set(namespace)
    assert "RedisBroker" not in namespace


@pytest.mark.parametrize("name", eventspype.__all__)
def test_every_name_in_all_is_importable(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from eventspype import {name}", namespace)
    assert namespace[name] is getattr(eventspype, name)


def test_dir_lists_every_public_name() -> None:
    listing = dir(eventspype)
    for name in eventspype.__all__:
        assert name in listing


def test_introspection_works_with_core_only() -> None:
    """help(), pydoc and inspect.getmembers() walk dir() and getattr() each
    name; a name listed there must not raise ImportError."""
    import inspect
    import pydoc

    broker_package = importlib.import_module("eventspype.broker")
    for module in (eventspype, broker_package):
        names = dict(inspect.getmembers(module))
        assert "LocalBroker" in names
        assert "LocalBroker" in pydoc.render_doc(module)


def test_version_is_a_string() -> None:
    assert isinstance(eventspype.__version__, str)
    assert eventspype.__version__.count(".") >= 2


# --- every public import path of the reference (core part) ------------------

PUBLIC_PATHS = {
    "eventspype": [
        "Event",
        "EventTag",
        "NormalizedTag",
        "TagEnum",
        "normalize_event_tag",
        "format_event_tag",
        "MessageBroker",
        "LocalBroker",
        "make_json_safe",
        "EventPublisher",
        "MultiPublisher",
        "EventPublication",
        "EventSubscriber",
        "OwnedEventSubscriber",
        "FunctionalEventSubscriber",
        "QueueEventSubscriber",
        "MultiSubscriber",
        "ReportingEventSubscriber",
        "TrackingEventSubscriber",
        "EventSubscription",
        "PublicationSubscription",
    ],
    "eventspype.event": [
        "Event",
        "EventTag",
        "NormalizedTag",
        "TagEnum",
        "normalize_event_tag",
        "format_event_tag",
    ],
    "eventspype.pub.publication": ["EventPublication"],
    "eventspype.pub.publisher": ["EventPublisher"],
    "eventspype.pub.multipublisher": ["MultiPublisher"],
    "eventspype.sub.subscriber": ["EventSubscriber", "OwnedEventSubscriber"],
    "eventspype.sub.functional": ["FunctionalEventSubscriber"],
    "eventspype.sub.multisubscriber": ["MultiSubscriber"],
    "eventspype.sub.subscription": ["EventSubscription", "PublicationSubscription"],
    "eventspype.sub.tracker": ["TrackingEventSubscriber"],
    "eventspype.sub.reporter": ["ReportingEventSubscriber"],
    "eventspype.sub.queue": ["QueueEventSubscriber"],
    "eventspype.broker": ["MessageBroker", "LocalBroker"],
    "eventspype.broker.broker": ["MessageBroker"],
    "eventspype.broker.local": ["LocalBroker"],
}


@pytest.mark.parametrize(
    ("module", "name"),
    [(m, n) for m, names in PUBLIC_PATHS.items() for n in names],
)
def test_public_import_path(module: str, name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module} import {name}", namespace)
    assert namespace[name] is not None
    # One object whatever the path: the top-level name is the same object.
    if hasattr(eventspype, name):
        assert namespace[name] is getattr(eventspype, name)


def test_event_tag_aliases_accept_the_documented_types() -> None:
    from enum import Enum

    from eventspype.event import EventTag, NormalizedTag

    assert isinstance(Enum("E", "A").A, EventTag)  # type: ignore[misc,arg-type]
    assert isinstance(1, EventTag)  # type: ignore[misc,arg-type]
    assert isinstance("a", EventTag)  # type: ignore[misc,arg-type]
    assert isinstance(1, NormalizedTag)  # type: ignore[misc,arg-type]
    assert not isinstance(1.5, NormalizedTag)  # type: ignore[misc,arg-type]


# --- no third-party runtime dependency --------------------------------------


def test_importing_eventspype_loads_only_the_standard_library() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import eventspype, eventspype.broker\n"
        "new = sorted({m.split('.')[0] for m in set(sys.modules) - before})\n"
        "print('\\n'.join(new))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    top_level = set(result.stdout.split())
    assert "eventspype" in top_level
    assert "async_timeout" not in top_level
    assert "graphviz" not in top_level
    stdlib = set(sys.stdlib_module_names)
    third_party = {m for m in top_level - stdlib - {"eventspype"} if m.isidentifier()}
    assert third_party == set()


@pytest.mark.parametrize("name", REDIS_BROKER_NAMES)
def test_from_eventspype_import_a_redis_broker_says_where_it_is(name: str) -> None:
    # Issue 16 item 6: the bare "cannot import name" sent newcomers searching.
    with pytest.raises(ImportError) as info:
        exec(f"from eventspype import {name}", {})
    message = str(info.value)
    assert f"from eventspype.broker.redis import {name}" in message
    assert "eventspype-redis" in message
    assert not hasattr(eventspype, "NoSuchName")  # the others stay attributes
