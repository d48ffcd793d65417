"""What a drawing shows, independent of how it is drawn.

The visualizer turns the classes it was given into a :class:`SystemView`
(nodes with their lines of text, edges with their labels); the Graphviz and
Mermaid writers only lay that view out in their own syntax, so both always
show the same system.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from eventspype.event import EventTag, format_event_tag, normalize_event_tag
from eventspype.pub.multipublisher import MultiPublisher
from eventspype.pub.publication import EventPublication
from eventspype.sub.multisubscriber import MultiSubscriber
from eventspype.sub.subscription import EventSubscription

__all__ = ["Edge", "Node", "SystemView", "describe", "find_matches"]

Publications = Mapping[str, EventPublication]
Subscriptions = Mapping[str, EventSubscription]


@dataclass(frozen=True)
class Node:
    """One class: a publisher or a subscriber."""

    #: Unique in the view, stable between runs, only ``[A-Za-z0-9_]``.
    node_id: str
    name: str
    role: Literal["Publisher", "Subscriber"]
    #: One line per publication or subscription, in declaration order.
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Edge:
    """Events of one tag going from a publisher class to a subscriber class."""

    source: str
    target: str
    label: str


@dataclass(frozen=True)
class SystemView:
    publishers: tuple[Node, ...]
    subscribers: tuple[Node, ...]
    edges: tuple[Edge, ...]


def find_matches(
    publisher_class: type[MultiPublisher],
    publications: Publications,
    subscriptions: Subscriptions,
) -> list[tuple[str, str, str]]:
    """``(publication name, subscription name, tag text)`` for each pair that
    connects: the subscription targets ``publisher_class`` (or a base of it)
    and one of its tags normalizes to the publication's tag.

    A subscription tag that cannot be normalized connects to nothing; it does
    not stop the drawing.
    """
    matches = []
    for publication_name, publication in publications.items():
        for subscription_name, subscription in subscriptions.items():
            if not issubclass(publisher_class, subscription.publisher_class):
                continue
            if any(
                _normalizes_to(tag, publication) for tag in _declared_tags(subscription)
            ):
                matches.append(
                    (
                        publication_name,
                        subscription_name,
                        format_event_tag(publication.original_tag),
                    )
                )
    return matches


def describe(
    publishers: Mapping[type[MultiPublisher], Publications],
    subscribers: Mapping[type[MultiSubscriber], Subscriptions],
) -> SystemView:
    """The nodes and edges of the given classes, in the order they were added."""
    ids = _NodeIds()
    publisher_ids = {cls: ids.new("pub", cls) for cls in publishers}
    subscriber_ids = {cls: ids.new("sub", cls) for cls in subscribers}
    publisher_nodes = tuple(
        Node(
            publisher_ids[cls],
            cls.__name__,
            "Publisher",
            tuple(
                f"{name}: {format_event_tag(publication.original_tag)}"
                for name, publication in publications.items()
            ),
        )
        for cls, publications in publishers.items()
    )
    subscriber_nodes = tuple(
        Node(
            subscriber_ids[cls],
            cls.__name__,
            "Subscriber",
            tuple(
                f"{name}: {_tags_text(subscription)} "
                f"({subscription.publisher_class.__name__})"
                for name, subscription in subscriptions.items()
            ),
        )
        for cls, subscriptions in subscribers.items()
    )
    edges = tuple(
        Edge(publisher_ids[publisher_class], subscriber_ids[subscriber_class], tag)
        for publisher_class, publications in publishers.items()
        for subscriber_class, subscriptions in subscribers.items()
        for _, _, tag in find_matches(publisher_class, publications, subscriptions)
    )
    return SystemView(publisher_nodes, subscriber_nodes, edges)


def _declared_tags(subscription: EventSubscription) -> list[EventTag]:
    tags = subscription.event_tag
    return list(tags) if isinstance(tags, list) else [tags]


def _normalizes_to(tag: EventTag, publication: EventPublication) -> bool:
    try:
        return normalize_event_tag(tag) == publication.event_tag
    except ValueError:
        return False


def _tags_text(subscription: EventSubscription) -> str:
    return ", ".join(format_event_tag(tag) for tag in _declared_tags(subscription))


class _NodeIds:
    """Readable node ids (``pub_Shop``), numbered only when two classes share
    a name, so the same system always gives the same text."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def new(self, prefix: str, cls: type) -> str:
        base = f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', cls.__name__)}"
        candidate, number = base, 1
        while candidate in self._taken:
            number += 1
            candidate = f"{base}_{number}"
        self._taken.add(candidate)
        return candidate
