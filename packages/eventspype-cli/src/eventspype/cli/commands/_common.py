"""Helpers every subcommand uses: the per-command ``--json``, the session, channels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from eventspype.broker.redis import StreamAdmin, UnknownChannel
from eventspype.cli.output import Output
from eventspype.cli.session import Session

__all__ = ["json_option", "output", "resolve_channel", "session_of"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        session_of(ctx).json = True


def json_option(command: _F) -> _F:
    """``--json`` after the command's name: the same as before it."""
    return click.option(
        "--json",
        "json_output",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print JSON for scripts.",
    )(command)


def session_of(ctx: click.Context) -> Session:
    """The :class:`Session` the ``eventspype`` group made."""
    return ctx.find_object(Session) or Session("", "eventspype:", False)


def output(ctx: click.Context) -> Output:
    """Where this command prints, in the mode the options chose."""
    return Output(session_of(ctx).json)


def resolve_channel(admin: StreamAdmin, name: str) -> str:
    """The stream channel an operator means by ``name``.

    Channels of string tags are upper case (``orders`` is published as
    ``ORDERS``): ``name`` is taken as written when such a stream exists,
    else upper-cased.

    Raises:
        UnknownChannel: neither exists; the message names both spellings.
    """
    for candidate in dict.fromkeys((name, name.upper())):
        try:
            admin.stream(candidate)
        except UnknownChannel:
            continue
        return candidate
    spelled = repr(name) if name == name.upper() else f"{name!r} (nor {name.upper()!r})"
    raise UnknownChannel(
        f"no stream of channel {spelled} under prefix {admin.prefix!r}; "
        "`eventspype streams` lists them"
    )
