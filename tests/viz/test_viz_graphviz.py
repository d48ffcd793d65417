"""generate_graph(): the graphviz.Digraph, read through its DOT source (no
program needed)."""

from __future__ import annotations

import re

import graphviz
from _viz_support import (
    Catalog,
    EmptyPublisher,
    EmptySubscriber,
    Loans,
    Notifier,
    SearchIndex,
    ignore,
)

from eventspype import (
    EventPublication,
    EventSubscription,
    MultiPublisher,
    MultiSubscriber,
)
from eventspype.viz import EventVisualizer

_EDGE = re.compile(r"^\t(\w+) -> (\w+) \[label=<(.*)> color=", re.M)


def _edges(source: str) -> list[tuple[str, str, str]]:
    return _EDGE.findall(source)


def test_the_graph_is_a_digraph_named_and_formatted_as_asked(
    library: EventVisualizer,
) -> None:
    default = library.generate_graph()
    custom = library.generate_graph(graph_name="Library", graph_format="svg")

    assert isinstance(default, graphviz.Digraph)
    assert (default.name, default.format) == ("EventSystem", "png")
    assert (custom.name, custom.format) == ("Library", "svg")
    assert custom.source.startswith("digraph Library {")


def test_an_empty_visualizer_draws_an_empty_graph() -> None:
    graph = EventVisualizer().generate_graph()

    assert graph.body == []


def test_one_box_per_class_listing_its_declarations(library: EventVisualizer) -> None:
    source = library.generate_graph().source

    catalog = _node_line(source, "pub_Catalog")
    assert "<b>Catalog</b>" in catalog
    assert "<i>Publisher</i>" in catalog
    assert "• added: BookTag.ADDED" in catalog
    assert "• removed: BookTag.REMOVED" in catalog
    loans = _node_line(source, "pub_Loans")
    assert '• due: "loan_due"' in loans
    assert "• returned: 42" in loans
    index = _node_line(source, "sub_SearchIndex")
    assert "<i>Subscriber</i>" in index
    assert "• books: BookTag.ADDED, BookTag.REMOVED (Catalog)" in index
    assert "• additions: BookTag.ADDED (Catalog)" in index
    notifier = _node_line(source, "sub_Notifier")
    assert '• due: "LOAN_DUE" (Loans)' in notifier
    assert "• restored: BookTag.RESTORED (RareCatalog)" in notifier


def test_one_arrow_per_connection_labelled_with_the_tag(
    library: EventVisualizer,
) -> None:
    edges = _edges(library.generate_graph().source)

    assert edges == [
        ("pub_Catalog", "sub_SearchIndex", "BookTag.ADDED"),
        ("pub_Catalog", "sub_SearchIndex", "BookTag.ADDED"),
        ("pub_Catalog", "sub_SearchIndex", "BookTag.REMOVED"),
        ("pub_Loans", "sub_Notifier", '"loan_due"'),
        ("pub_Loans", "sub_Notifier", "42"),
    ]


def test_classes_without_declarations_say_so() -> None:
    visualizer = EventVisualizer()
    visualizer.add_publisher(EmptyPublisher)
    visualizer.add_subscriber(EmptySubscriber)

    source = visualizer.generate_graph().source

    assert "<i>No publications</i>" in _node_line(source, "pub_EmptyPublisher")
    assert "<i>No subscriptions</i>" in _node_line(source, "sub_EmptySubscriber")
    assert _edges(source) == []


def test_the_source_is_the_same_every_time() -> None:
    def draw() -> str:
        visualizer = EventVisualizer()
        visualizer.add_publisher(Loans)
        visualizer.add_publisher(Catalog)
        visualizer.add_subscriber(Notifier)
        visualizer.add_subscriber(SearchIndex)
        return str(visualizer.generate_graph().source)

    first = draw()
    assert draw() == first
    # Publishers first, each group in the order added.
    order = re.findall(r"^\t(\w+) \[label=", first, re.M)
    assert order == ["pub_Loans", "pub_Catalog", "sub_Notifier", "sub_SearchIndex"]


def test_classes_that_share_a_name_get_their_own_boxes() -> None:
    def make_shop(tag: str) -> type[MultiPublisher]:
        class Shop(MultiPublisher):
            placed = EventPublication(tag, dict)

        return Shop

    first, second = make_shop("first"), make_shop("second")

    class Listener(MultiSubscriber):
        on_second = EventSubscription(second, "second", ignore)

    visualizer = EventVisualizer()
    visualizer.add_publisher(first)
    visualizer.add_publisher(second)
    visualizer.add_subscriber(Listener)
    source = visualizer.generate_graph().source

    assert '• placed: "first"' in _node_line(source, "pub_Shop")
    assert '• placed: "second"' in _node_line(source, "pub_Shop_2")
    assert [e[:2] for e in _edges(source)] == [("pub_Shop_2", "sub_Listener")]


def test_markup_entities_and_backslashes_in_tags_are_drawn_literally() -> None:
    # Graphviz would read "<b>" as bold, "&amp;" as "&" and "\\N" as the
    # node's name. (What dot actually draws is checked in the render tests.)
    class Odd(MultiPublisher):
        html = EventPublication("<b>&amp;</b>", dict)
        backslash = EventPublication("a\\N", dict)

    class OddListener(MultiSubscriber):
        html = EventSubscription(Odd, "<B>&AMP;</B>", ignore)
        backslash = EventSubscription(Odd, "A\\n", ignore)

    visualizer = EventVisualizer()
    visualizer.add_publisher(Odd)
    visualizer.add_subscriber(OddListener)
    source = visualizer.generate_graph().source

    odd = _node_line(source, "pub_Odd")
    assert '• html: "&lt;b&gt;&amp;amp;&lt;/b&gt;"' in odd
    assert '• backslash: "a\\\\N"' in odd
    assert [label for _, _, label in _edges(source)] == [
        '"&lt;b&gt;&amp;amp;&lt;/b&gt;"',
        '"a\\\\N"',
    ]


def _node_line(source: str, node_id: str) -> str:
    (line,) = [
        line for line in source.splitlines() if line.startswith(f"\t{node_id} [")
    ]
    return line
