"""Names documented under ``eventspype`` that live in optional distributions."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__all__ = ["available", "load_lazy"]


def load_lazy(
    table: dict[str, tuple[str, str]],
    package: str,
    name: str,
    namespace: dict[str, Any],
    elsewhere: dict[str, tuple[str, str]] | None = None,
) -> Any:
    """Import ``name`` from the module ``table`` names and cache it in ``namespace``.

    ``table`` maps an attribute name to ``(module, distribution)``. A missing
    distribution raises an ``ImportError`` that says what to install; any other
    import failure propagates unchanged (it is a real bug, not a missing part).
    ``elsewhere`` maps names people look for in ``package`` but that live in
    another module, as ``table`` does (``RedisBroker`` is in
    ``eventspype.broker.redis``): they raise an ``ImportError`` naming that
    module and its distribution (an ``AttributeError`` would reach ``from
    package import name`` as a bare "cannot import name").
    """
    if elsewhere is not None and name in elsewhere:
        module_name, distribution = elsewhere[name]
        raise ImportError(
            f"cannot import name {name!r} from {package!r}: it is in "
            f"{module_name} (from {module_name} import {name}), provided by "
            f"{distribution}",
            name=package,
        )
    try:
        module_name, distribution = table[name]
    except KeyError:
        raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is None or not module_name.startswith(error.name):
            raise
        raise ImportError(
            f"{name} is provided by {distribution}: pip install {distribution}",
            name=module_name,
        ) from error
    value = getattr(module, name)
    namespace[name] = value
    return value


def available(table: dict[str, tuple[str, str]]) -> list[str]:
    """The names of ``table`` whose module can be imported, for ``__dir__``.

    Listing a name whose distribution is missing would make ``help()`` and
    ``inspect.getmembers`` fail on the ``ImportError``.
    """
    names = []
    for name, (module_name, _) in table.items():
        try:
            found = importlib.util.find_spec(module_name) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            names.append(name)
    return names
