"""``eventspype publish CHANNEL --class module:Name --json '{...}' [--stream]``.

The one command that imports a class: the operator names it, from their own
code (the current directory is searched first, as ``python -m`` does). The
JSON is decoded into that class by the real serializer, so a wrong field is
refused here, and the event is published by a real broker (``RedisBroker``,
or ``RedisStreamBroker`` with ``--stream``): exactly what the application
would send.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from eventspype import EventPublication, EventPublisher
from eventspype.broker.redis import RedisBroker, RedisStreamBroker
from eventspype.cli.commands._common import output, session_of
from eventspype.cli.output import safe
from eventspype.serializers import JsonEventSerializer

__all__ = ["publish"]


def import_class(spec: str) -> type:
    """The class ``module:Qualified.Name`` names.

    Raises:
        click.BadParameter: not of that form, not importable, or not a class.
    """
    module_name, _, qualname = spec.partition(":")
    if not module_name or not qualname:
        raise click.BadParameter("expected module:Name, e.g. myapp.events:OrderPlaced")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except ImportError as error:
        raise click.BadParameter(f"cannot import {module_name!r}: {error}") from None
    except AttributeError:
        raise click.BadParameter(f"{module_name!r} has no {qualname!r}") from None
    if not isinstance(target, type):
        raise click.BadParameter(f"{spec} is not a class")
    return target


def _tag(channel: str) -> str | int:
    return int(channel) if channel.isdigit() else channel


@click.command()
@click.argument("channel")
@click.option(
    "--class",
    "class_spec",
    required=True,
    metavar="MODULE:NAME",
    help="The event class, imported from your code.",
)
@click.option(
    "--json",
    "payload",
    required=True,
    metavar="JSON",
    help="The event's fields as a JSON object.",
)
@click.option(
    "--stream",
    is_flag=True,
    help="Add to the channel's stream (RedisStreamBroker), not Pub/Sub.",
)
@click.option(
    "--maxlen",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --stream: trim to about N entries, as your brokers do.",
)
@click.pass_context
def publish(
    ctx: click.Context,
    channel: str,
    class_spec: str,
    payload: str,
    stream: bool,
    maxlen: int | None,
) -> None:
    """Publish one event on CHANNEL, as your application would.

    The class is imported (this is the only command that imports anything),
    the JSON becomes an instance of it through the JSON serializer, and a
    broker publishes it. For JSON output, put --json before the command:
    eventspype --json publish ...
    """
    event_class = import_class(class_spec)
    try:
        event: Any = JsonEventSerializer().deserialize(payload.encode(), event_class)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--json") from None
    session = session_of(ctx)
    broker: RedisBroker | RedisStreamBroker
    if stream:
        broker = RedisStreamBroker(
            session.client, channel_prefix=session.prefix, maxlen=maxlen
        )
    else:
        broker = RedisBroker(session.client, channel_prefix=session.prefix)
    try:
        publication = EventPublication(_tag(channel), event_class)
        EventPublisher(publication, broker=broker).publish(event)
    finally:
        broker.close()
    where = str(publication.event_tag)
    out = output(ctx)
    if out.json:
        out.document(
            {"published": True, "channel": where, "stream": stream, "class": class_spec}
        )
    else:
        kind = "stream" if stream else "Pub/Sub channel"
        out.line(f"published {safe(class_spec)} on {kind} {safe(where)}")
