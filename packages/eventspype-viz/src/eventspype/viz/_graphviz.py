"""Lay a :class:`SystemView` out as a ``graphviz.Digraph``."""

from __future__ import annotations

from html import escape

from eventspype.viz._system import Node, SystemView

try:
    # graphviz ships no type information.
    import graphviz  # type: ignore[import-untyped]
except ImportError as error:  # pragma: no cover - a declared dependency
    raise ImportError(
        "graphviz is required for visualization. Install it with: "
        "pip install graphviz (or reinstall eventspype-viz, which depends on it)"
    ) from error

__all__ = ["build_digraph", "graphviz"]

_COLORS = {
    "Publisher": {"fillcolor": "#E3F2FD", "color": "#1976D2"},
    "Subscriber": {"fillcolor": "#F3E5F5", "color": "#7B1FA2"},
}
_EMPTY = {"Publisher": "No publications", "Subscriber": "No subscriptions"}
_HEADING = {"Publisher": "Publications:", "Subscriber": "Subscriptions:"}


def build_digraph(view: SystemView, name: str, graph_format: str) -> graphviz.Digraph:
    """A ``graphviz.Digraph``: one box per class, one labelled edge per tag."""
    graph = graphviz.Digraph(
        name=name,
        format=graph_format,
        graph_attr={"rankdir": "LR", "nodesep": "0.8", "ranksep": "1.5"},
    )
    for node in (*view.publishers, *view.subscribers):
        graph.node(
            node.node_id,
            label=_label(node),
            shape="box",
            style="filled,rounded",
            penwidth="2",
            **_COLORS[node.role],
        )
    for edge in view.edges:
        graph.edge(
            edge.source,
            edge.target,
            label=f"<{_literal(edge.label)}>",
            color="#4CAF50",
            penwidth="2",
            fontsize="10",
        )
    return graph


def _label(node: Node) -> str:
    """An HTML-like label; class names and tags are escaped into it."""
    parts = [f"<b>{_literal(node.name)}</b>", f"<i>{node.role}</i>", ""]
    if node.lines:
        parts.append(f"<b>{_HEADING[node.role]}</b>")
        parts += [f"• {_literal(line)}" for line in node.lines]
    else:
        parts.append(f"<i>{_EMPTY[node.role]}</i>")
    return "<" + "<br/>".join(parts) + ">"


def _literal(text: str) -> str:
    """``text`` shown as is in an HTML-like label.

    Graphviz reads markup and entities there, then backslash escapes
    (``\\N`` is the node's name, ``\\\\`` one backslash), so a string tag
    could otherwise change what is drawn or break the DOT source.
    """
    return escape(text, quote=False).replace("\\", "\\\\")
