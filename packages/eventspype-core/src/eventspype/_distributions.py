"""Which eventspype distributions are installed, and their versions."""

from __future__ import annotations

import importlib.metadata
import re

__all__ = ["versions"]


def versions() -> dict[str, str]:
    """The installed eventspype distributions and their versions, by name.

    ``eventspype.__version__`` is the version of ``eventspype-core`` (the
    distribution that owns the ``eventspype`` package). The meta-package
    ``eventspype`` and the others (``eventspype-serializers``,
    ``eventspype-redis``, ``eventspype-viz``) have versions of their own; this
    lists every one that is installed, for example::

        >>> eventspype.versions()
        {'eventspype': '2.0.0', 'eventspype-core': '1.0.0', ...}
    """
    found: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if not name:
            continue
        # PEP 503 normalization: Eventspype_Core and eventspype.core are the same.
        normalized = re.sub(r"[-_.]+", "-", name).lower()
        if normalized == "eventspype" or normalized.startswith("eventspype-"):
            # The first one found wins, as it does for imports.
            found.setdefault(normalized, distribution.version)
    return dict(sorted(found.items()))
