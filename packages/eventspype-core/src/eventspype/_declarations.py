"""Collecting the declarations (class attributes of one kind) of a class."""

from __future__ import annotations

from typing import TypeVar

__all__ = ["declared_attributes"]

_T = TypeVar("_T")


def declared_attributes(
    cls: type, kind: type[_T], cache: dict[type, dict[str, _T]]
) -> dict[str, _T]:
    """The attributes of ``cls`` and its bases that are ``kind`` instances, by name.

    A name defined on a subclass hides the same name on its bases, as
    attribute lookup does. The result is computed once per class and kept in
    ``cache``; callers must not mutate it.
    """
    cached = cache.get(cls)
    if cached is None:
        cached = {}
        for klass in cls.__mro__:
            for name, value in vars(klass).items():
                if isinstance(value, kind) and name not in cached:
                    cached[name] = value
        cache[cls] = cached
    return cached
