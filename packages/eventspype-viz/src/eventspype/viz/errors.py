"""The error raised when rendering needs a program that is not installed."""

from __future__ import annotations

from eventspype.viz._graphviz import graphviz

__all__ = ["GraphvizNotFoundError"]


# graphviz is untyped, so mypy sees its exception as Any.
class GraphvizNotFoundError(graphviz.ExecutableNotFound):  # type: ignore[misc]
    """Graphviz's ``dot`` program, which draws the image, is not on ``PATH``.

    A subclass of ``graphviz.ExecutableNotFound`` (a ``RuntimeError``), so code
    that caught that around :meth:`EventVisualizer.render` in eventspype 1.4.2
    still does. ``pip`` cannot install the program; the message says how.
    """

    # graphviz formats this with the command it failed to start.
    _msg = (
        "rendering needs Graphviz's {!r} program, which is not on PATH. "
        "Install Graphviz: apt-get install graphviz (Debian, Ubuntu), "
        "dnf install graphviz (Fedora), brew install graphviz (macOS), "
        "winget install graphviz (Windows), or see "
        "https://graphviz.org/download/. "
        "EventVisualizer.to_mermaid() and generate_graph().source need no program."
    )
