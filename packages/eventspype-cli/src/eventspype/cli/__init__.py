"""The ``eventspype`` command: what an operator needs at 3 a.m.

``tail`` live events, ``streams`` (groups, consumers, pending, lag, dead
letters), ``dead-letters`` (list, show, replay, purge), ``health`` (an exit
status for a probe), ``publish`` (an event given as JSON). Provided by the
eventspype-cli distribution; run ``eventspype --help``.

Nothing received is imported or executed: messages are checked and shown
with :func:`eventspype.broker.redis.describe_message`, without their classes.
"""

from eventspype.cli._version import __version__
from eventspype.cli.app import cli, main

__all__ = ["__version__", "cli", "main"]
