"""A small library system to draw: every kind of tag and subscription.

- ``Catalog`` publishes enum tags; ``RareCatalog`` inherits them and adds one.
- ``Loans`` publishes a string tag and an int tag.
- ``SearchIndex`` subscribes to two catalog tags with one list subscription,
  and to one of them again on its own.
- ``Notifier`` subscribes to a loans tag written in another case, to a
  publication by name (``PublicationSubscription``) and to ``RareCatalog``.
- ``Bystander`` subscribes to nothing drawn here: it must get no arrow.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest

from eventspype import (
    EventPublication,
    EventPublisher,
    EventSubscription,
    MultiPublisher,
    MultiSubscriber,
    PublicationSubscription,
)

#: Render tests draw real images with Graphviz's program.
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's `dot` program is not on PATH, so nothing can be rendered "
    "(apt-get install graphviz, brew install graphviz); .ci/run installs it",
)


class BookTag(Enum):
    ADDED = 1
    REMOVED = 2
    RESTORED = 3


@dataclass(frozen=True)
class BookChanged:
    isbn: str


@dataclass(frozen=True)
class LoanEvent:
    isbn: str
    member: int


class Catalog(MultiPublisher):
    added = EventPublication(BookTag.ADDED, BookChanged)
    removed = EventPublication(BookTag.REMOVED, BookChanged)


class RareCatalog(Catalog):
    restored = EventPublication(BookTag.RESTORED, BookChanged)


class Loans(MultiPublisher):
    due = EventPublication("loan_due", LoanEvent)
    returned = EventPublication(42, LoanEvent)


def ignore(subscriber: Any, event: Any) -> None:
    """A handler that does nothing: these tests only draw."""


class SearchIndex(MultiSubscriber):
    books = EventSubscription(
        Catalog,
        [BookTag.ADDED, BookTag.REMOVED],
        ignore,
        callback_with_event_info=False,
    )
    additions = EventSubscription(
        Catalog, BookTag.ADDED, ignore, callback_with_event_info=False
    )


class Notifier(MultiSubscriber):
    due = EventSubscription(Loans, "LOAN_DUE", ignore, callback_with_event_info=False)
    returned = PublicationSubscription(
        Loans, Loans.returned, ignore, callback_with_event_info=False
    )
    restored = EventSubscription(
        RareCatalog, BookTag.RESTORED, ignore, callback_with_event_info=False
    )


class Bystander(MultiSubscriber):
    # Same tag as Loans.due, but from a plain EventPublisher.
    elsewhere = EventSubscription(
        EventPublisher, "loan_due", ignore, callback_with_event_info=False
    )


class EmptyPublisher(MultiPublisher):
    pass


class EmptySubscriber(MultiSubscriber):
    pass
