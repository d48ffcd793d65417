"""Lay a :class:`SystemView` out as a Mermaid flowchart (text, no program)."""

from __future__ import annotations

from eventspype.viz._system import Node, SystemView

__all__ = ["to_mermaid"]

_CLASS_DEFS = {
    "Publisher": "publisher fill:#E3F2FD,stroke:#1976D2,stroke-width:2px",
    "Subscriber": "subscriber fill:#F3E5F5,stroke:#7B1FA2,stroke-width:2px",
}
_EMPTY = {"Publisher": "no publications", "Subscriber": "no subscriptions"}
# Characters that would end a quoted label or be read as markup or as the
# start of one of Mermaid's own entity codes (#quot;).
_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    "`": "#96;",
}


def to_mermaid(view: SystemView) -> str:
    """``flowchart LR`` text: one rounded box per class, one labelled arrow per
    tag, publishers and subscribers coloured as in the Graphviz drawing."""
    lines = ["flowchart LR"]
    lines += [
        f'    {node.node_id}("{_label(node)}")'
        for node in (*view.publishers, *view.subscribers)
    ]
    lines += [
        f'    {edge.source} -->|"{_text(edge.label)}"| {edge.target}'
        for edge in view.edges
    ]
    lines += [f"    classDef {definition}" for definition in _CLASS_DEFS.values()]
    for nodes in (view.publishers, view.subscribers):
        if nodes:
            ids = ",".join(node.node_id for node in nodes)
            lines.append(f"    class {ids} {nodes[0].role.lower()}")
    return "\n".join(lines) + "\n"


def _label(node: Node) -> str:
    body = [_text(line) for line in node.lines] or [_EMPTY[node.role]]
    return "<br/>".join([f"<b>{_text(node.name)}</b>", node.role.lower(), *body])


def _text(text: str) -> str:
    """``text`` as literal characters inside a quoted Mermaid label."""
    escaped = "".join(_ENTITIES.get(char, char) for char in text)
    # A label is one line of source; a line break would end the statement.
    return " ".join(escaped.splitlines())
