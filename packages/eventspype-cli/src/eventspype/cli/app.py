"""The ``eventspype`` group: options shared by every command, errors, version.

An error the user can act on (the server is down, the URL is wrong, the
channel or group does not exist, Redis refused a command) is printed as one
line, ``Error: ...``, with exit status 1 (2 for a usage mistake, as click
does), never as a traceback.
"""

from __future__ import annotations

from typing import Any

import click

from eventspype import versions
from eventspype.cli.commands.dead_letters import dead_letters
from eventspype.cli.commands.health import health
from eventspype.cli.commands.publish import publish
from eventspype.cli.commands.streams import streams
from eventspype.cli.commands.tail import tail
from eventspype.cli.output import Output
from eventspype.cli.session import DEFAULT_URL, EXPECTED, Session, user_error

__all__ = ["cli", "main"]


class _Group(click.Group):
    """A group that turns the expected errors of any command into one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EXPECTED as error:
            session = ctx.find_object(Session)
            raise user_error(error, session.url if session else "") from None


def _print_versions(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    found = versions()
    if ctx.params.get("json_output"):
        Output(True).document(found)
    else:
        for name, version in found.items():
            click.echo(f"{name} {version}")
    ctx.exit(0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="EVENTSPYPE_REDIS_URL",
    default=DEFAULT_URL,
    show_default=True,
    metavar="URL",
    help="The Redis server (redis://, rediss://, unix://); env EVENTSPYPE_REDIS_URL.",
)
@click.option(
    "--prefix",
    default="eventspype:",
    show_default=True,
    help="The brokers' channel_prefix.",
)
@click.option(
    "--json",
    "json_output",
    is_flag=True,
    is_eager=True,
    help="Print JSON for scripts (every command; also after the command's name).",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_versions,
    help="Print the version of every installed eventspype distribution.",
)
@click.pass_context
def cli(ctx: click.Context, url: str, prefix: str, json_output: bool) -> None:
    """Look into a running eventspype system on Redis: live events, streams,
    consumer groups, dead letters, health.

    Nothing received is imported or executed: events are shown as JSON,
    decoded without their classes.
    """
    session = Session(url, prefix, json_output)
    ctx.obj = session
    ctx.call_on_close(session.close)


cli.add_command(tail)
cli.add_command(streams)
cli.add_command(dead_letters)
cli.add_command(health)
cli.add_command(publish)


def main() -> None:
    """The console script ``eventspype``."""
    cli(prog_name="eventspype")
