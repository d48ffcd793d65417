"""Griffe extension: render the Sphinx-style markup of our docstrings in Markdown.

The docstrings are written for readers of the source and of ``help()``, so
they use reST conventions: roles such as :class:`~eventspype.LocalBroker` and a
``::`` that introduces an indented example. mkdocstrings renders docstrings as
Markdown, where both would show up verbatim. This extension rewrites them once
the package is loaded:

- a role whose target is a public object with a docstring (so it has a
  heading in the reference) becomes an autorefs link, such as
  ``[`LocalBroker`][eventspype.broker.local.LocalBroker]``; any other role
  becomes inline code, so ``mkdocs build --strict`` never fails on a link
  that cannot resolve;
- a paragraph ending in ``::`` ends in ``:`` (the indented block after it is
  already a code block in Markdown).

Loaded by mkdocs.yml (``extensions:`` of the python handler); not shipped.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?:class|meth|func|attr|mod|exc|data|obj|const):`([^`]+)`"
)
_LITERAL_INTRO = re.compile(r"(\S)\s*::[ \t]*$", re.MULTILINE)


class SphinxRoles(griffe.Extension):
    """Rewrite reST roles and ``::`` in every docstring of the loaded packages."""

    def on_package(
        self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any
    ) -> None:
        self._visit(pkg, loader.modules_collection, set())

    def _visit(self, obj: Any, collection: Any, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.is_alias:
            return
        if obj.docstring is not None:
            obj.docstring.value = _rewrite(obj.docstring.value, obj, collection)
        for member in obj.members.values():
            self._visit(member, collection, seen)


def _rewrite(text: str, obj: Any, collection: Any) -> str:
    def replace(match: re.Match[str]) -> str:
        target = match.group(1).strip()
        short = target.startswith("~")
        target = target.lstrip("~")
        if target.endswith("()"):
            target = target[:-2]
        label = target.rsplit(".", 1)[-1] if short else target
        path = _resolve(target, obj, collection)
        if path is None:
            return f"`{label}`"
        return f"[`{label}`][{path}]"

    return _LITERAL_INTRO.sub(r"\1:", _ROLE.sub(replace, text))


def _resolve(target: str, obj: Any, collection: Any) -> str | None:
    """The full path of a documented public object ``target`` names, if any."""
    candidates = [target]
    # A bare name refers to a sibling member (e.g. :meth:`publish` in a class).
    scope = obj if obj.is_class or obj.is_module else obj.parent
    while scope is not None:
        candidates.append(f"{scope.path}.{target}")
        scope = scope.parent
    for path in candidates:
        if not path.startswith("eventspype.") and path != "eventspype":
            continue
        if any(part.startswith("_") for part in path.split(".")):
            continue
        try:
            found = collection.get_member(path)
        except (KeyError, ValueError, griffe.AliasResolutionError):
            continue
        if found.is_alias:
            try:
                found = found.final_target
            except griffe.AliasResolutionError:
                continue
            if any(part.startswith("_") for part in found.path.split(".")):
                continue
        # Only objects with a docstring get a heading (and so an anchor).
        if not found.docstring:
            continue
        return str(found.path)
    return None
