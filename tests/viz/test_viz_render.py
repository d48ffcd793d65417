"""render(): real images when Graphviz's ``dot`` is installed, and a clear
error that says how to install it when it is not."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import graphviz
import pytest
from _viz_support import ignore, needs_dot

from eventspype import (
    EventPublication,
    EventSubscription,
    MultiPublisher,
    MultiSubscriber,
)
from eventspype.viz import EventVisualizer, GraphvizNotFoundError

_SVG = "{http://www.w3.org/2000/svg}"


def _svg_texts(path: Path) -> list[str]:
    root = ElementTree.parse(path).getroot()
    return [element.text or "" for element in root.iter(f"{_SVG}text")]


@needs_dot
def test_render_writes_a_png_and_returns_its_path(
    library: EventVisualizer, tmp_path: Path
) -> None:
    result = library.render(str(tmp_path / "library"))

    assert result == str(tmp_path / "library.png")
    assert Path(result).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # cleanup=True: the DOT source is not left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["library.png"]


@needs_dot
def test_render_draws_every_class_and_arrow(
    library: EventVisualizer, tmp_path: Path
) -> None:
    result = library.render(
        tmp_path / "library", graph_name="Library", graph_format="svg"
    )

    assert result.endswith("library.svg")
    svg = Path(result)
    texts = _svg_texts(svg)
    for expected in ("Catalog", "Loans", "SearchIndex", "Notifier", "Publisher"):
        assert expected in texts
    # The arrows' labels, once per arrow.
    assert texts.count("BookTag.ADDED") == 2
    assert texts.count('"loan_due"') == 1
    assert "<title>Library</title>" in svg.read_text()


@needs_dot
def test_markup_in_tags_is_drawn_as_written(tmp_path: Path) -> None:
    tag = "<b>&amp;</b> \\N"

    class Odd(MultiPublisher):
        odd = EventPublication(tag, dict)

    class OddListener(MultiSubscriber):
        odd = EventSubscription(Odd, tag, ignore)

    visualizer = EventVisualizer()
    visualizer.add_publisher(Odd)
    visualizer.add_subscriber(OddListener)

    texts = _svg_texts(Path(visualizer.render(tmp_path / "odd", graph_format="svg")))

    assert f'• odd: "{tag}"' in texts  # the publisher's box
    assert f'"{tag}"' in texts  # the arrow


def test_without_dot_render_says_what_to_install(
    library: EventVisualizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-programs-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    with pytest.raises(GraphvizNotFoundError) as raised:
        library.render(str(tmp_path / "library"))

    message = str(raised.value)
    assert message.startswith("rendering needs Graphviz's 'dot' program")
    assert "not on PATH" in message
    for hint in ("apt-get install graphviz", "brew install graphviz"):
        assert hint in message
    assert "https://graphviz.org/download/" in message
    assert "to_mermaid()" in message
    # Code written for 1.4.2 caught graphviz's own exception; it still does.
    assert isinstance(raised.value, graphviz.ExecutableNotFound)
    assert isinstance(raised.value, RuntimeError)
    assert isinstance(raised.value.__cause__, graphviz.ExecutableNotFound)
    # Nothing left behind: no image, and not the DOT source written first.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-programs-here"]


def test_without_dot_the_text_outputs_still_work(
    library: EventVisualizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    assert "pub_Catalog" in library.generate_graph().source
    assert "pub_Catalog" in library.to_mermaid()
