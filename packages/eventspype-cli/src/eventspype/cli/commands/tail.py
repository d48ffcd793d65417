"""``eventspype tail [PATTERN...]``: live events, one line each, until Ctrl-C."""

from __future__ import annotations

import re
import signal
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import click
import redis

from eventspype._internal.backoff import Backoff
from eventspype.broker.redis import describe_message
from eventspype.cli.commands._common import json_option, output, session_of
from eventspype.cli.output import Output, as_json, safe, when
from eventspype.cli.tailing import PatternSource, Received, ShardSource, StreamSource

__all__ = ["start_id", "tail"]

_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_ID = re.compile(r"\d+(-\d+)?")
#: Seconds each poll of a source may wait (Ctrl-C is seen within it).
_POLL = 0.2


def start_id(since: str | None, server_now: datetime) -> str:
    """The stream id after which ``--since`` starts.

    ``None``: from now (the server's clock); ``10m``/``2h``/``30s``/``1d``: that
    long ago; an ISO 8601 time; a stream id (``1733560000000-0``, ``0`` for
    the beginning).

    Raises:
        click.BadParameter: none of these.
    """
    if since is None:
        moment = server_now
    elif _ID.fullmatch(since):
        return since
    elif match := _DURATION.fullmatch(since):
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        moment = server_now - delta
    else:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            raise click.BadParameter(
                "expected a duration (30s, 10m, 2h, 1d), an ISO 8601 time or "
                "a stream id",
                param_hint="--since",
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
    return str(int(moment.timestamp() * 1000))


#: What a lost server raises while tail runs: tail waits for it to come back.
_LOST = (redis.ConnectionError, redis.TimeoutError)
_BACKOFF = Backoff(first=0.2, longest=5.0)


class _Stop:
    """Ctrl-C (SIGINT) or SIGTERM asks tail to stop; it does at its next poll.

    The handler only sets a flag: a KeyboardInterrupt raised wherever the
    signal lands (inside redis-py, a finalizer, rich) could leave a
    traceback behind. Polls wait at most a fraction of a second, so tail
    ends promptly; a second signal raises KeyboardInterrupt at once. Outside
    the main thread (no handlers can be set there) signals act as usual.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for number in self._SIGNALS:
                self._previous[number] = signal.signal(number, self._on_signal)

    def _on_signal(self, _number: int, _frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if a stop is requested meanwhile."""
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}


class _Outage:
    """Says on stderr when the server went away and when it is back, once each.

    The sources reconnect by themselves at their next poll (redis-py opens a
    new connection and its PubSub subscribes again); this only waits between
    tries, with backoff. Events published meanwhile on Pub/Sub are not seen
    (nobody receives them); streams resume after the last entry shown.
    """

    def __init__(self, stop: _Stop) -> None:
        self.failures = 0
        self._stop = stop

    def failed(self, error: Exception) -> None:
        self.failures += 1
        if self.failures == 1:
            click.echo(f"lost Redis ({safe(error)}); reconnecting...", err=True)
        self._stop.sleep(_BACKOFF.delay(self.failures))

    def recovered(self) -> None:
        if self.failures:
            click.echo("Redis is back", err=True)
            self.failures = 0


def _server_now(client: Any) -> datetime:
    seconds, micros = client.time()
    return datetime.fromtimestamp(seconds + micros / 1e6, tz=timezone.utc)


def _show(out: Output, item: Received, max_bytes: int) -> None:
    view = describe_message(item.channel, item.data, max_bytes)
    if out.json:
        out.document(
            {
                "time": item.time,
                "source": item.source,
                "channel": item.channel,
                "id": item.entry_id,
                "event_tag": view.event_tag,
                "event_module": view.event_module,
                "event_class": view.event_class,
                "payload": view.payload,
                "problem": view.problem,
            }
        )
        return
    where = safe(item.channel) + (f" {item.entry_id}" if item.entry_id else "")
    if view.problem is not None:
        out.line(f"{when(item.time)}  {where}  REFUSED {safe(view.problem)}", "red")
        return
    name = safe(f"{view.event_module}:{view.event_class}")
    out.line(f"{when(item.time)}  {where}  {name}  {as_json(view.payload)}")


@click.command()
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...")
@click.option(
    "--streams",
    "from_streams",
    is_flag=True,
    help="Read the channels' streams (XREAD: no group, nothing acknowledged).",
)
@click.option(
    "--pubsub",
    "from_pubsub",
    is_flag=True,
    help="Read Pub/Sub too (the default without --streams).",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="With --streams: start at 10m / 2h / an ISO time / a stream id "
    "(default: now).",
)
@click.option(
    "--count",
    "-n",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop after N events.",
)
@click.option(
    "--max-bytes",
    metavar="BYTES",
    default=1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1),
    help="Larger messages are shown as refused (oversized), unread.",
)
@json_option
@click.pass_context
def tail(
    ctx: click.Context,
    patterns: tuple[str, ...],
    from_streams: bool,
    from_pubsub: bool,
    since: str | None,
    count: int | None,
    max_bytes: int,
) -> None:
    """Live events of the channels matching PATTERN (a glob; default: all),
    one line each: time (UTC), channel, class, payload as JSON.

    Messages that fail the receiver's checks are shown as REFUSED with the
    reason. No class is imported. Channels of string tags are upper case
    (ORDER*). Stops on Ctrl-C or after --count events.
    """
    if since is not None and not from_streams:
        raise click.UsageError("--since needs --streams (Pub/Sub keeps no history)")
    session = session_of(ctx)
    client, admin, out = session.client, session.admin, output(ctx)
    wanted = list(patterns) or ["*"]
    sources: list[Any] = []
    stop = _Stop()
    try:
        if from_pubsub or not from_streams:
            kind = ShardSource if session.cluster else PatternSource
            sources.append(kind(client, admin, wanted))
        if from_streams:
            start = start_id(since, _server_now(client))
            sources.append(StreamSource(client, admin, wanted, start))
        shown, outage = 0, _Outage(stop)
        while not stop.requested and (count is None or shown < count):
            for source in sources:
                try:
                    items = source.poll(_POLL / len(sources))
                except _LOST as error:
                    outage.failed(error)
                    continue
                outage.recovered()
                for item in items:
                    _show(out, item, max_bytes)
                    shown += 1
                    if count is not None and shown >= count:
                        return
    except KeyboardInterrupt:
        return  # a second Ctrl-C: stop at once, still without a traceback
    finally:
        stop.restore()
        for source in sources:
            source.close()
