"""EventVisualizer: which classes it accepts, what it reads from them, and
which publications it connects to which subscriptions."""

from __future__ import annotations

from typing import Any

import pytest
from _viz_support import (
    BookTag,
    Bystander,
    Catalog,
    EmptyPublisher,
    Loans,
    Notifier,
    RareCatalog,
    SearchIndex,
    ignore,
)

import eventspype.viz
from eventspype import EventPublisher, EventSubscription, MultiSubscriber
from eventspype.viz import EventVisualizer
from eventspype.viz.visualizer import EventVisualizer as FromModule

# --- the import paths of 1.4.2 ----------------------------------------------


def test_both_import_paths_give_the_same_class() -> None:
    assert FromModule is EventVisualizer
    assert "EventVisualizer" in eventspype.viz.__all__


def test_the_distribution_has_a_version() -> None:
    from importlib.metadata import version

    assert eventspype.viz.__version__ == version("eventspype-viz")


# --- adding classes ---------------------------------------------------------


def test_add_publisher_reads_every_publication_inherited_ones_included() -> None:
    visualizer = EventVisualizer()
    visualizer.add_publisher(RareCatalog)

    publications = visualizer._publishers[RareCatalog]
    assert publications == {
        "restored": RareCatalog.restored,
        "added": Catalog.added,
        "removed": Catalog.removed,
    }


def test_add_subscriber_reads_every_subscription() -> None:
    visualizer = EventVisualizer()
    visualizer.add_subscriber(Notifier)

    assert set(visualizer._subscribers[Notifier]) == {"due", "returned", "restored"}


def test_adding_a_class_twice_draws_it_once() -> None:
    visualizer = EventVisualizer()
    visualizer.add_publisher(Catalog)
    visualizer.add_publisher(Loans)
    visualizer.add_publisher(Catalog)

    assert list(visualizer._publishers) == [Catalog, Loans]
    assert visualizer.generate_graph().source.count("<b>Catalog</b>") == 1


def test_clear_forgets_everything_and_the_visualizer_can_be_reused(
    library: EventVisualizer,
) -> None:
    library.clear()

    assert library._publishers == {}
    assert library._subscribers == {}
    library.add_publisher(EmptyPublisher)
    source = library.generate_graph().source
    assert "EmptyPublisher" in source
    assert "Catalog" not in source


# --- what is refused, and how -----------------------------------------------


class NotAClass:
    pass


@pytest.mark.parametrize(
    ("candidate", "detail"),
    [
        (NotAClass, "got <class"),
        (EventPublisher, "got <class 'eventspype.pub.publisher.EventPublisher'>"),
        (SearchIndex, "SearchIndex"),
        (Catalog(), "got an instance of Catalog: pass the class itself"),
        ("Catalog", "got 'Catalog'"),
        (None, "got None"),
    ],
)
def test_add_publisher_refuses_anything_but_a_multipublisher_class(
    candidate: Any, detail: str
) -> None:
    visualizer = EventVisualizer()

    with pytest.raises(ValueError, match="subclass of MultiPublisher") as e:
        visualizer.add_publisher(candidate)

    # 1.4.2's wording first, so code matching it keeps working.
    message = str(e.value)
    assert message.startswith("Publisher class must be a subclass of MultiPublisher")
    assert detail in message
    assert visualizer._publishers == {}


@pytest.mark.parametrize(
    ("candidate", "detail"),
    [
        (NotAClass, "got <class"),
        (Catalog, "Catalog"),
        (SearchIndex(), "got an instance of SearchIndex: pass the class itself"),
        (42, "got 42"),
    ],
)
def test_add_subscriber_refuses_anything_but_a_multisubscriber_class(
    candidate: Any, detail: str
) -> None:
    visualizer = EventVisualizer()

    with pytest.raises(ValueError, match="subclass of MultiSubscriber") as e:
        visualizer.add_subscriber(candidate)

    message = str(e.value)
    assert message.startswith("Subscriber class must be a subclass of MultiSubscriber")
    assert detail in message
    assert visualizer._subscribers == {}


# --- connections ------------------------------------------------------------


def _matches(
    visualizer: EventVisualizer, publisher: type, subscriber: type
) -> list[tuple[str, str, str]]:
    return visualizer._find_matches(
        publisher,
        visualizer._publishers[publisher],
        visualizer._subscribers[subscriber],
    )


def test_a_list_subscription_connects_to_each_listed_tag(
    library: EventVisualizer,
) -> None:
    assert _matches(library, Catalog, SearchIndex) == [
        ("added", "books", "BookTag.ADDED"),
        ("added", "additions", "BookTag.ADDED"),
        ("removed", "books", "BookTag.REMOVED"),
    ]


def test_string_tags_match_in_any_case_and_publications_by_name(
    library: EventVisualizer,
) -> None:
    # Notifier.due says "LOAN_DUE"; Loans.due was declared as "loan_due".
    assert _matches(library, Loans, Notifier) == [
        ("due", "due", '"loan_due"'),
        ("returned", "returned", "42"),
    ]


def test_nothing_connects_classes_that_do_not_subscribe_to_each_other(
    library: EventVisualizer,
) -> None:
    library.add_subscriber(Bystander)

    assert _matches(library, Loans, SearchIndex) == []
    assert _matches(library, Catalog, Notifier) == []
    # Same tag as Loans.due, but subscribed on another publisher class.
    assert _matches(library, Loans, Bystander) == []


def test_a_subscription_to_a_base_class_reaches_its_subclasses_not_the_reverse() -> (
    None
):
    class RareOnly(MultiSubscriber):
        added = EventSubscription(RareCatalog, BookTag.ADDED, ignore)

    visualizer = EventVisualizer()
    visualizer.add_publisher(Catalog)
    visualizer.add_publisher(RareCatalog)
    visualizer.add_subscriber(SearchIndex)
    visualizer.add_subscriber(RareOnly)

    # SearchIndex subscribes to Catalog: RareCatalog is a Catalog.
    assert len(_matches(visualizer, RareCatalog, SearchIndex)) == 3
    assert _matches(visualizer, RareCatalog, RareOnly) == [
        ("added", "added", "BookTag.ADDED")
    ]
    # A Catalog is not a RareCatalog.
    assert _matches(visualizer, Catalog, RareOnly) == []


def test_a_tag_that_cannot_be_normalized_connects_to_nothing() -> None:
    # Core rejects such a tag when a subscription is declared; a subscription
    # that reports one anyway (a subclass, say) must not stop the drawing.
    class Loose(EventSubscription):
        @property
        def event_tag(self) -> Any:
            return [3.14, None, BookTag.ADDED]

    loose = Loose(Catalog, BookTag.ADDED, ignore)
    visualizer = EventVisualizer()
    visualizer.add_publisher(Catalog)

    matches = visualizer._find_matches(
        Catalog, visualizer._publishers[Catalog], {"loose": loose}
    )

    assert matches == [("added", "loose", "BookTag.ADDED")]


@pytest.mark.parametrize(
    ("tag", "text"),
    [(BookTag.ADDED, "BookTag.ADDED"), ("loan_due", '"loan_due"'), (42, "42")],
)
def test_tags_are_shown_as_format_event_tag_shows_them(tag: Any, text: str) -> None:
    assert EventVisualizer()._format_tag(tag) == text
