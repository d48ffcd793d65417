"""Draw which publisher classes send which events to which subscriber classes."""

from __future__ import annotations

import contextlib
import os

from eventspype.event import EventTag, format_event_tag
from eventspype.pub.multipublisher import MultiPublisher
from eventspype.pub.publication import EventPublication
from eventspype.sub.multisubscriber import MultiSubscriber
from eventspype.sub.subscription import EventSubscription
from eventspype.viz._graphviz import build_digraph, graphviz
from eventspype.viz._mermaid import to_mermaid
from eventspype.viz._system import SystemView, describe, find_matches
from eventspype.viz.errors import GraphvizNotFoundError

__all__ = ["EventVisualizer"]


class EventVisualizer:
    """Draws an event system from its classes, not from live objects.

    Add :class:`MultiPublisher` and :class:`MultiSubscriber` subclasses; the
    drawing has one box per class, listing its publications or subscriptions,
    and one arrow, labelled with the tag, for each subscription that receives
    a publication: the subscription names the publisher's class (or a base of
    it) and one of its tags is the publication's tag.

    ::

        visualizer = EventVisualizer()
        visualizer.add_publisher(Shop)
        visualizer.add_subscriber(Warehouse)
        print(visualizer.to_mermaid())       # text, no program needed
        visualizer.render("event-system")    # event-system.png, needs `dot`

    Classes are drawn in the order they were added; adding one again keeps its
    place and reads its declarations again.
    """

    def __init__(self) -> None:
        self._publishers: dict[type[MultiPublisher], dict[str, EventPublication]] = {}
        self._subscribers: dict[
            type[MultiSubscriber], dict[str, EventSubscription]
        ] = {}

    def add_publisher(self, publisher_class: type[MultiPublisher]) -> None:
        """Draw ``publisher_class`` and its publications (inherited ones too).

        Raises:
            ValueError: it is not a ``MultiPublisher`` subclass (an instance
                of one included).
        """
        _check_class(publisher_class, MultiPublisher, "Publisher")
        self._publishers[publisher_class] = dict(
            publisher_class.get_event_definitions()
        )

    def add_subscriber(self, subscriber_class: type[MultiSubscriber]) -> None:
        """Draw ``subscriber_class`` and its subscriptions (inherited ones too).

        Raises:
            ValueError: it is not a ``MultiSubscriber`` subclass (an instance
                of one included).
        """
        _check_class(subscriber_class, MultiSubscriber, "Subscriber")
        self._subscribers[subscriber_class] = dict(
            subscriber_class.get_event_definitions()
        )

    def clear(self) -> None:
        """Forget every class added, to draw another system."""
        self._publishers.clear()
        self._subscribers.clear()

    def generate_graph(
        self, graph_name: str = "EventSystem", graph_format: str = "png"
    ) -> graphviz.Digraph:
        """The drawing as a ``graphviz.Digraph`` (its ``.source`` is DOT text).

        Building it needs no program; ``graph_format`` (``png``, ``svg``,
        ``pdf``, ...) is only used when the graph is rendered.
        """
        return build_digraph(self._view(), graph_name, graph_format)

    def render(
        self,
        output_path: str | os.PathLike[str],
        graph_name: str = "EventSystem",
        graph_format: str = "png",
        view: bool = False,
    ) -> str:
        """Draw the system to ``output_path`` plus the format's extension and
        return that file's path; ``view=True`` also opens it in the default
        viewer. The intermediate DOT file is not kept.

        Raises:
            GraphvizNotFoundError: Graphviz's ``dot`` program is not installed
                (the message says how to install it).
        """
        graph = self.generate_graph(graph_name, graph_format)
        try:
            rendered: str = graph.render(output_path, view=view, cleanup=True)
        except graphviz.ExecutableNotFound as error:
            # The DOT source was written before dot was looked for; with
            # cleanup=True the caller asked not to keep it.
            with contextlib.suppress(OSError):
                os.remove(graph.filepath)
            raise GraphvizNotFoundError(["dot"]) from error
        return rendered

    def to_mermaid(self) -> str:
        """The drawing as Mermaid flowchart text, for places that render
        Mermaid themselves (GitHub, GitLab, mkdocs-material): no program needed.

        The text depends only on the classes added and their order, so it can
        be committed and compared.
        """
        return to_mermaid(self._view())

    def _view(self) -> SystemView:
        return describe(self._publishers, self._subscribers)

    def _find_matches(
        self,
        pub_class: type[MultiPublisher],
        publications: dict[str, EventPublication],
        subscriptions: dict[str, EventSubscription],
    ) -> list[tuple[str, str, str]]:
        """``(publication name, subscription name, tag text)`` of each arrow
        from ``pub_class`` to the owner of ``subscriptions`` (kept from 1.4.2)."""
        return find_matches(pub_class, publications, subscriptions)

    def _format_tag(self, tag: EventTag) -> str:
        """``tag`` as the drawing shows it (kept from 1.4.2)."""
        return format_event_tag(tag)


def _check_class(candidate: object, base: type, role: str) -> None:
    if isinstance(candidate, type) and issubclass(candidate, base):
        return
    message = f"{role} class must be a subclass of {base.__name__}"
    if isinstance(candidate, base):
        got = f"an instance of {type(candidate).__name__}: pass the class itself"
    else:
        got = repr(candidate)
    raise ValueError(f"{message}, got {got}")
