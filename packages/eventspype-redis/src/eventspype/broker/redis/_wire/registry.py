"""Which event classes a received message may name (no I/O, thread-safe).

A message names its class by module and qualified name. That name comes from
whoever could publish on the server, so it is resolved only against what the
user allowed, in this order:

1. classes registered with :meth:`ClassRegistry.register` (nothing imported);
2. with ``allowed_modules=("myapp.events",)``: a class defined in one of those
   modules or their submodules, imported on first use. Defined there: the
   class's own ``__module__`` is allowed and its ``__qualname__`` is the name
   the message gave, so a class merely imported into an allowed module (or
   an alias) is refused;
3. with ``allow_unregistered=True`` (as in eventspype 1.4.2): any class of any
   module, imported. Whoever can publish can then make this process import any
   module it has (running its top-level code): a :class:`UnsafeClassImportWarning`
   says so, once per process.
"""

from __future__ import annotations

import importlib
import sys
import threading
import warnings
from collections.abc import Iterable

from eventspype._internal.fork import register_for_fork
from eventspype.broker.redis._wire.envelope import EnvelopeError

__all__ = ["ClassRegistry", "UnsafeClassImportWarning"]


class UnsafeClassImportWarning(UserWarning):
    """``allow_unregistered_classes=True``: any publisher can make us import."""


_warned = False


def _warn_unsafe() -> None:
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(
        "allow_unregistered_classes=True lets anyone who can publish on the "
        "Redis server make this process import any module it can find (and "
        "run that module's top-level code); register the event classes, or "
        "name the modules they come from with allowed_modules=(...)",
        UnsafeClassImportWarning,
        stacklevel=4,  # RedisBroker(...) in the user's code
    )


class ClassRegistry:
    """The allowlist of event classes, keyed by ``"<module>.<qualname>"``.

    Args:
        allow_unregistered: Import any class a message names (see the module docs).
        allowed_modules: Import classes of these modules (and their submodules)
            on demand; e.g. ``("myapp.events",)`` allows ``myapp.events`` and
            ``myapp.events.orders`` but not ``myapp.eventsx``.

    Raises:
        ValueError: an empty module name in ``allowed_modules``.
    """

    def __init__(
        self, allow_unregistered: bool = False, allowed_modules: Iterable[str] = ()
    ) -> None:
        modules = tuple(allowed_modules)
        if isinstance(allowed_modules, str) or not all(
            isinstance(m, str) and m.strip(".") for m in modules
        ):
            raise ValueError(
                f"allowed_modules must be module names, got {allowed_modules!r}"
            )
        self._allow_unregistered = allow_unregistered
        self._prefixes = tuple(m.strip(".") for m in modules)
        if allow_unregistered:
            _warn_unsafe()
        self._lock = threading.Lock()
        self._classes: dict[str, type] = {}
        self._by_qualname: dict[str, tuple[str, ...]] = {}
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        # A parent thread may have held the lock at the fork.
        self._lock = threading.Lock()

    def register(self, event_class: type) -> None:
        """Allow ``event_class`` in received messages.

        Raises:
            TypeError: ``event_class`` is not a class.
        """
        if not isinstance(event_class, type):
            raise TypeError(
                f"register_event_class() needs a class, got {event_class!r}"
            )
        module, qualname = event_class.__module__, event_class.__qualname__
        with self._lock:
            # Copy-on-write: readers use the dicts without the lock.
            self._classes = {**self._classes, f"{module}.{qualname}": event_class}
            known = self._by_qualname.get(qualname, ())
            if module not in known:
                self._by_qualname = {**self._by_qualname, qualname: (*known, module)}

    def resolve(self, module: str, qualname: str) -> type:
        """The class a message names.

        Raises:
            EnvelopeError: (reason ``unregistered_class``) the class is not
                allowed, or importing it failed in any way (even with
                ``SystemExit``: the error is reported, never raised).
        """
        event_class = self._classes.get(f"{module}.{qualname}")
        if event_class is not None:
            return event_class
        if self._allow_unregistered:
            return _import_class(module, qualname)
        if self._module_allowed(module):
            return self._check_defined_there(_import_class(module, qualname), qualname)
        raise EnvelopeError("unregistered_class", self._refusal(module, qualname))

    def _check_defined_there(self, event_class: type, qualname: str) -> type:
        """``event_class`` if it is defined in an allowed module as ``qualname``."""
        own_module = getattr(event_class, "__module__", None)
        own_qualname = getattr(event_class, "__qualname__", None)
        if (
            isinstance(own_module, str)
            and self._module_allowed(own_module)
            and own_qualname == qualname
        ):
            return event_class
        raise EnvelopeError(
            "unregistered_class",
            f"{qualname!r} names {own_module}.{own_qualname}, which is not "
            "defined in an allowed module under that name (allowed_modules "
            "admits classes defined there, not ones imported into them)",
        )

    def _module_allowed(self, module: str) -> bool:
        return any(
            module == prefix or module.startswith(prefix + ".")
            for prefix in self._prefixes
        )

    def _refusal(self, module: str, qualname: str) -> str:
        same_name = self._by_qualname.get(qualname)
        if same_name:
            return (
                f"event class {qualname} of module {module!r} is not registered "
                f"(a class of that name is registered from module(s) "
                f"{', '.join(repr(m) for m in same_name)}: the publisher "
                "defines it in another module)"
            )
        return (
            f"event class {module}.{qualname} is not registered; call "
            "broker.register_event_class() to accept it"
        )


def _import_class(module_name: str, qualname: str) -> type:
    if "<" in qualname:  # "<locals>": defined in a function, not importable
        raise EnvelopeError(
            "unregistered_class", f"{module_name}.{qualname} is not importable"
        )
    try:
        obj: object = sys.modules.get(module_name) or importlib.import_module(
            module_name
        )
        for attribute in qualname.split("."):
            obj = getattr(obj, attribute)
    except BaseException as error:
        # Importing runs the module's code: whatever it raises (SystemExit from
        # a package's __main__, say) concerns this message only.
        raise EnvelopeError(
            "unregistered_class",
            f"cannot import {module_name}.{qualname}: {error!r}",
        ) from None
    if not isinstance(obj, type):
        raise EnvelopeError(
            "unregistered_class", f"{module_name}.{qualname} is not a class"
        )
    return obj
