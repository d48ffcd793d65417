"""docs/visualization.md shows what to_mermaid() returns for its own system.

The page's Python blocks run in order in one namespace (as the docs runner
of tests/integration runs them); the visualizer they leave behind must print
exactly the text of the page's ``mermaid`` block and of its ``text`` block.
"""

from __future__ import annotations

import re
import sys
import textwrap
import types
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "visualization.md"
_BLOCK = re.compile(
    r"^(?P<indent>[ ]*)```(?P<language>\w+)\n(?P<body>.*?)^(?P=indent)```$",
    re.M | re.S,
)


def _blocks(language: str) -> list[str]:
    return [
        textwrap.dedent(match["body"])
        for match in _BLOCK.finditer(PAGE.read_text(encoding="utf-8"))
        if match["language"] == language
    ]


def test_the_page_draws_its_system_with_the_text_to_mermaid_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A real module: dataclasses look up the module of the classes they make.
    page = types.ModuleType("_viz_docs_page")
    monkeypatch.setitem(sys.modules, page.__name__, page)
    for code in _blocks("python"):
        exec(compile(code, str(PAGE), "exec"), page.__dict__)

    mermaid = page.visualizer.to_mermaid()

    assert "pub_Shop -->" in mermaid
    assert _blocks("mermaid") == [mermaid]
    assert _blocks("text") == [mermaid]
