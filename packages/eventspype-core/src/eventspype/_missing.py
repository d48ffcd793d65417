"""Say which distribution to install when an optional subpackage is missing.

``eventspype.serializers``, ``eventspype.broker.redis``, ``eventspype.viz`` and
``eventspype.otel`` come from their own distributions. Without one of them,
``import`` would fail with a bare ``No module named ...``;
:class:`MissingDistributionFinder` turns that into a ``ModuleNotFoundError``
that names the distribution to install.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["MISSING_HINTS", "MissingDistributionFinder", "install"]

#: Module -> the distribution that provides it (and its submodules).
MISSING_HINTS: dict[str, str] = {
    "eventspype.serializers": "eventspype-serializers",
    "eventspype.broker.serializer": "eventspype-serializers",
    "eventspype.broker.redis": "eventspype-redis",
    "eventspype.viz": "eventspype-viz",
    "eventspype.testing": "eventspype-testing",
    "eventspype.otel": "eventspype-otel",
}


class MissingDistributionFinder:
    """A meta path finder consulted only after every real finder failed.

    It sits at the end of ``sys.meta_path``, so an import that succeeds never
    reaches it (no cost), and it only answers for the modules of
    :data:`MISSING_HINTS`: for those it raises the error with the install
    hint; for anything else it returns ``None`` like any finder that does not
    know a module.

    ``importlib.util.find_spec()`` on such a module raises the same error
    instead of returning ``None``: probe with ``try/except ImportError``.
    """

    @classmethod
    def find_spec(
        cls,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        distribution = MISSING_HINTS.get(fullname)
        if distribution is None:
            return None
        raise ModuleNotFoundError(
            f"No module named {fullname!r}: it is provided by the "
            f"{distribution} distribution: pip install {distribution}",
            name=fullname,
        )


def install() -> None:
    """Append the finder to ``sys.meta_path`` once (reloads do not add more)."""
    if not any(
        getattr(finder, "__name__", None) == MissingDistributionFinder.__name__
        for finder in sys.meta_path
    ):
        sys.meta_path.append(MissingDistributionFinder)
