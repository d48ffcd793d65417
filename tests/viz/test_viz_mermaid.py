"""to_mermaid(): the same drawing as Mermaid flowchart text."""

from __future__ import annotations

import re

from _viz_support import EmptyPublisher, EmptySubscriber, ignore

from eventspype import (
    EventPublication,
    EventSubscription,
    MultiPublisher,
    MultiSubscriber,
)
from eventspype.viz import EventVisualizer

CLASS_DEFS = """\
    classDef publisher fill:#E3F2FD,stroke:#1976D2,stroke-width:2px
    classDef subscriber fill:#F3E5F5,stroke:#7B1FA2,stroke-width:2px
"""

LIBRARY = (
    """\
flowchart LR
    pub_Catalog("<b>Catalog</b><br/>publisher<br/>added: BookTag.ADDED<br/>\
removed: BookTag.REMOVED")
    pub_Loans("<b>Loans</b><br/>publisher<br/>due: #quot;loan_due#quot;<br/>\
returned: 42")
    sub_SearchIndex("<b>SearchIndex</b><br/>subscriber<br/>\
books: BookTag.ADDED, BookTag.REMOVED (Catalog)<br/>\
additions: BookTag.ADDED (Catalog)")
    sub_Notifier("<b>Notifier</b><br/>subscriber<br/>due: #quot;LOAN_DUE#quot; \
(Loans)<br/>returned: 42 (Loans)<br/>restored: BookTag.RESTORED (RareCatalog)")
    pub_Catalog -->|"BookTag.ADDED"| sub_SearchIndex
    pub_Catalog -->|"BookTag.ADDED"| sub_SearchIndex
    pub_Catalog -->|"BookTag.REMOVED"| sub_SearchIndex
    pub_Loans -->|"#quot;loan_due#quot;"| sub_Notifier
    pub_Loans -->|"42"| sub_Notifier
"""
    + CLASS_DEFS
    + """\
    class pub_Catalog,pub_Loans publisher
    class sub_SearchIndex,sub_Notifier subscriber
"""
)


def test_the_library_system_as_mermaid(library: EventVisualizer) -> None:
    assert library.to_mermaid() == LIBRARY


def test_mermaid_and_graphviz_show_the_same_arrows(library: EventVisualizer) -> None:
    mermaid = re.findall(r"^    (\w+) -->\|", library.to_mermaid(), re.M)
    dot = re.findall(r"^\t(\w+) -> ", library.generate_graph().source, re.M)

    assert mermaid == dot
    assert len(mermaid) == 5


def test_an_empty_visualizer_gives_a_flowchart_with_no_nodes() -> None:
    assert EventVisualizer().to_mermaid() == "flowchart LR\n" + CLASS_DEFS


def test_classes_without_declarations_say_so() -> None:
    visualizer = EventVisualizer()
    visualizer.add_publisher(EmptyPublisher)
    visualizer.add_subscriber(EmptySubscriber)

    lines = visualizer.to_mermaid().splitlines()

    assert lines[1:3] == [
        '    pub_EmptyPublisher("<b>EmptyPublisher</b><br/>publisher<br/>'
        'no publications")',
        '    sub_EmptySubscriber("<b>EmptySubscriber</b><br/>subscriber<br/>'
        'no subscriptions")',
    ]
    assert "-->" not in visualizer.to_mermaid()


def test_characters_mermaid_would_read_are_written_as_entity_codes() -> None:
    # A quote would end the label, "#...;" is Mermaid's own entity syntax,
    # < > & are markup, a backtick starts a markdown string and a line break
    # ends the statement.
    tag = 'say "hi" #1; <b>&`x`\nnext'

    class Odd(MultiPublisher):
        odd = EventPublication(tag, dict)

    class OddListener(MultiSubscriber):
        odd = EventSubscription(Odd, tag, ignore)

    visualizer = EventVisualizer()
    visualizer.add_publisher(Odd)
    visualizer.add_subscriber(OddListener)
    text = visualizer.to_mermaid()

    shown = "#quot;say #quot;hi#quot; #35;1; #lt;b#gt;#amp;#96;x#96; next#quot;"
    assert f'pub_Odd("<b>Odd</b><br/>publisher<br/>odd: {shown}")' in text
    assert f'pub_Odd -->|"{shown}"| sub_OddListener' in text
    # One statement per line: nothing in the tag broke the text apart.
    assert len(text.splitlines()) == 1 + 2 + 1 + 2 + 2


def test_node_ids_are_safe_and_unique_for_any_class_name() -> None:
    def make(name: str) -> type[MultiPublisher]:
        return type(name, (MultiPublisher,), {})

    visualizer = EventVisualizer()
    for name in ("Café", "Caf_", "Shop", "Shop"):
        visualizer.add_publisher(make(name))

    ids = re.findall(r"^    (\S+)\(", visualizer.to_mermaid(), re.M)

    assert ids == ["pub_Caf_", "pub_Caf__2", "pub_Shop", "pub_Shop_2"]
    # The label keeps the real name.
    assert '("<b>Café</b><br/>' in visualizer.to_mermaid()
