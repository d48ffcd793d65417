"""Draw an eventspype system: which publisher classes send which events to
which subscriber classes, as a Graphviz image or as Mermaid text.

``from eventspype import EventVisualizer`` works too when this distribution
(eventspype-viz) is installed.
"""

from eventspype.viz._version import __version__
from eventspype.viz.errors import GraphvizNotFoundError
from eventspype.viz.visualizer import EventVisualizer

__all__ = ["EventVisualizer", "GraphvizNotFoundError", "__version__"]
