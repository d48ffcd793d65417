"""Find the Python code blocks of a documentation page, ready to execute.

A page's ```` ```python ```` blocks run in order, in one namespace, so a page
reads like a session: later blocks use what earlier ones defined. An HTML
comment on the line before a block changes how it is treated:

- ``<!-- skip-test: why -->``: not executed (an interface outline, say). The
  reason is required, so every skipped block says why.
- ``<!-- requires: attrs, pydantic -->``: the block runs only where these
  modules can be imported (later blocks must not depend on it).

A block line ``--8<-- "examples/x.py"`` (pymdownx.snippets) is replaced by
that file, exactly as mkdocs renders it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Block", "extract_blocks", "needs_redis"]

_FENCE_OPEN = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\n`]*)$"
)
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>skip-test|requires)\s*:?(?P<arg>.*?)-->\s*$")
_SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$')
# What connects to a server, as opposed to merely mentioning Redis.
_REDIS_USE = re.compile(r"redis\.Redis\(|RedisBroker\.from_url\(|redis://")


@dataclass
class Block:
    """One Python block: its code and where it comes from."""

    code: str
    #: File to name in tracebacks: the page, or the included example file.
    filename: str
    #: Line of the page (1-based) where the code starts; 1 for included files.
    first_line: int
    skip_reason: str | None = None
    requires: list[str] = field(default_factory=list)


def extract_blocks(page: Path, repo_root: Path) -> list[Block]:
    """The Python blocks of ``page`` in document order (skipped ones included)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opened = _FENCE_OPEN.match(lines[index])
        if opened is None:
            index += 1
            continue
        indent, fence = opened["indent"], opened["fence"]
        language = opened["info"].split()[0].lower() if opened["info"].strip() else ""
        start = index + 1
        end = start
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        if language in ("python", "py"):
            body = [_dedent(line, indent) for line in lines[start:end]]
            marker = _marker_before(lines, index)
            blocks.append(_make_block(body, page, start + 1, marker, repo_root))
        index = end + 1
    return blocks


def needs_redis(blocks: list[Block]) -> bool:
    """Whether any executed block connects to a Redis server."""
    return any(b.skip_reason is None and _REDIS_USE.search(b.code) for b in blocks)


def _make_block(
    body: list[str],
    page: Path,
    first_line: int,
    marker: tuple[str, str] | None,
    repo_root: Path,
) -> Block:
    block = Block("\n".join(body) + "\n", str(page), first_line)
    snippets = [m for m in map(_SNIPPET.match, body) if m]
    if snippets and len(snippets) == len([line for line in body if line.strip()]):
        included = [repo_root / m["path"] for m in snippets]
        block.code = "".join(p.read_text(encoding="utf-8") for p in included)
        block.filename, block.first_line = str(included[0]), 1
    elif snippets:
        raise ValueError(f"{page}:{first_line}: mix a snippet with code? Not supported")
    if marker is not None:
        kind, arg = marker
        if kind == "skip-test":
            if not arg:
                raise ValueError(f"{page}:{first_line}: skip-test needs a reason")
            block.skip_reason = arg
        else:
            block.requires = [name.strip() for name in arg.split(",") if name.strip()]
    return block


def _marker_before(lines: list[str], fence_index: int) -> tuple[str, str] | None:
    previous = fence_index - 1
    while previous >= 0 and not lines[previous].strip():
        previous -= 1
    if previous < 0:
        return None
    found = _MARKER.match(lines[previous])
    if found is None:
        return None
    return found["kind"], found["arg"].strip()


def _dedent(line: str, indent: str) -> str:
    return line[len(indent) :] if line.startswith(indent) else line.lstrip()
