"""``eventspype dead-letters list|show|replay|purge CHANNEL``.

The operations of ``RedisStreamBroker.dead_letters()`` and
``republish_dead_letters()``, through :class:`~eventspype.broker.redis.StreamAdmin`
(the same functions underneath). Whole-stream work goes page by page, so memory
stays bounded whatever the number of letters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import click

from eventspype.broker.redis import (
    DeadLetter,
    StreamAdmin,
    UnknownGroup,
    describe_message,
)
from eventspype.cli.commands._common import (
    json_option,
    output,
    resolve_channel,
    session_of,
)
from eventspype.cli.output import as_json, safe, when

__all__ = ["dead_letters"]

#: Longest error text in the ``list`` table (``show`` prints it whole).
_SHORT = 60
#: What ``show`` prints after the letter's own fields, in its own way.
_SHOWN_BELOW = frozenset(
    {"error", "event_tag", "event_module", "event_class", "payload", "problem"}
)


def _describe(letter: DeadLetter) -> dict[str, Any]:
    """The letter's fields (its envelope's bytes aside) and what the envelope says."""
    view = describe_message(letter.channel, letter.event)
    fields = {k: v for k, v in asdict(letter).items() if k != "event"}
    return {
        **fields,
        "event_tag": view.event_tag,
        "event_module": view.event_module,
        "event_class": view.event_class,
        "payload": view.payload,
        "problem": view.problem,
    }


def _class_of(described: dict[str, Any]) -> str:
    if described["event_class"] is None:
        return "?"
    return f"{described['event_module']}:{described['event_class']}"


def _letter_time(letter_id: str) -> str:
    from datetime import datetime, timezone

    millis = letter_id.partition("-")[0]
    if not millis.isdigit():
        return "-"
    return when(datetime.fromtimestamp(int(millis) / 1000, tz=timezone.utc))


def _target(
    ctx: click.Context, channel: str, group: str | None
) -> tuple[StreamAdmin, str]:
    """The admin and the channel as stored; an unknown group is an error."""
    admin = session_of(ctx).admin
    channel = resolve_channel(admin, channel)
    if group is not None:
        known = {g.name for g in admin.stream(channel).groups}
        if group not in known and not admin.dead_letters(channel, 1, group=group):
            names = ", ".join(sorted(known)) or "none"
            raise UnknownGroup(
                f"channel {channel!r} has no group {group!r} and no dead letters of "
                f"it (its groups: {names})"
            )
    return admin, channel


def _chosen(
    admin: StreamAdmin, channel: str, group: str | None, ids: tuple[str, ...]
) -> Iterator[list[DeadLetter]]:
    """The letters an operation applies to, page by page (``ids``: only those)."""
    if not ids:
        yield from admin.all_dead_letters(channel, group)
        return
    letters = []
    for letter_id in ids:
        letter = admin.dead_letter(channel, letter_id)
        if letter is None:
            raise LookupError(f"no dead letter {letter_id!r} on channel {channel!r}")
        if group is None or letter.group == group:
            letters.append(letter)
    yield letters


_channel_argument = click.argument("channel")
_group_option = click.option(
    "--group", "-g", metavar="GROUP", help="Only the letters this group gave up on."
)
_id_option = click.option(
    "--id", "ids", multiple=True, metavar="ID", help="Only this letter (repeatable)."
)


@click.group("dead-letters")
def dead_letters() -> None:
    """List, show, replay or purge a channel's dead letters.

    Dead letters are the entries a consumer group gave up on after
    max_deliveries, or that failed the receiver's checks; they live in
    <prefix>{CHANNEL}:dead.
    """


@dead_letters.command("list")
@_channel_argument
@_group_option
@click.option(
    "--count",
    "-n",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many, oldest first.",
)
@click.option(
    "--after", default="0", metavar="ID", help="Start after this letter id (to page)."
)
@json_option
@click.pass_context
def list_letters(
    ctx: click.Context, channel: str, group: str | None, count: int, after: str
) -> None:
    """The oldest dead letters of CHANNEL."""
    admin, channel = _target(ctx, channel, group)
    described = [_describe(x) for x in admin.dead_letters(channel, count, after, group)]
    out = output(ctx)
    if out.json:
        out.document({"channel": channel, "dead_letters": described})
        return
    if not described:
        out.line(f"no dead letters on {safe(channel)}")
        return
    out.table(
        f"Dead letters of {safe(channel)}",
        ["id", "time (UTC)", "deliveries", "group", "class", "error"],
        [
            [
                d["id"],
                _letter_time(d["id"]),
                d["deliveries"],
                d["group"],
                _class_of(d),
                _shorten(d["error"]),
            ]
            for d in described
        ],
    )


def _shorten(text: str) -> str:
    text = text.splitlines()[0] if text else ""
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."


@dead_letters.command("show")
@_channel_argument
@click.argument("letter_id", metavar="ID")
@json_option
@click.pass_context
def show(ctx: click.Context, channel: str, letter_id: str) -> None:
    """One dead letter of CHANNEL, whole: the event as JSON and the error."""
    admin, channel = _target(ctx, channel, None)
    letter = admin.dead_letter(channel, letter_id)
    if letter is None:
        raise LookupError(f"no dead letter {letter_id!r} on channel {channel!r}")
    described = _describe(letter)
    out = output(ctx)
    if out.json:
        out.document(described)
        return
    for key, value in described.items():
        if key not in _SHOWN_BELOW:
            out.line(f"{key + ':':<13}{safe(value)}")
    out.line(f"{'time:':<13}{_letter_time(letter.id)} UTC")
    out.line(f"{'class:':<13}{safe(_class_of(described))}")
    if described["problem"]:
        out.line(f"{'refused:':<13}{safe(described['problem'])}")
    out.line(f"{'payload:':<13}{as_json(described['payload'])}")
    out.line(f"{'error:':<13}{safe(letter.error)}")


@dead_letters.command()
@_channel_argument
@_group_option
@_id_option
@click.option(
    "--maxlen",
    type=click.IntRange(min=1),
    metavar="N",
    help="Trim the stream to about N entries, as your brokers' maxlen.",
)
@json_option
@click.pass_context
def replay(
    ctx: click.Context,
    channel: str,
    group: str | None,
    ids: tuple[str, ...],
    maxlen: int | None,
) -> None:
    """Put dead letters back at the end of CHANNEL's stream.

    As republish_dead_letters(): each becomes a new entry, so EVERY group
    receives it again (idempotent handlers make that harmless), and leaves
    the dead letters. This command has no event classes: it checks only the
    envelope (size, JSON, fields, tag of the channel) and keeps back, with
    the reason, the letters that would be refused again.
    """
    admin, channel = _target(ctx, channel, group)
    out = output(ctx)
    done, refused = 0, list[tuple[str, str]]()
    total = None if ids else admin.stream(channel).dead_letters
    with out.progress("replaying", total) as bar:
        for page in _chosen(admin, channel, group, ids):
            result = admin.republish_dead_letters(channel, page, maxlen)
            done += result.republished
            refused.extend((letter.id, why) for letter, why in result.refused)
            bar.advance(bar.task_ids[0], len(page))
    if out.json:
        out.document(
            {
                "channel": channel,
                "republished": done,
                "refused": [{"id": i, "reason": why} for i, why in refused],
                "checked": "envelope only",
            }
        )
        return
    out.line(f"re-published {done} dead letter(s) to {safe(channel)}")
    if refused:
        out.line(
            f"kept back {len(refused)} that would be refused again "
            "(envelope checks only; classes are not checked here):"
        )
        for letter_id, why in refused:
            out.line(f"  {letter_id}: {safe(why)}")


@dead_letters.command()
@_channel_argument
@_group_option
@_id_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
def purge(
    ctx: click.Context,
    channel: str,
    group: str | None,
    ids: tuple[str, ...],
    yes: bool,
) -> None:
    """Delete dead letters of CHANNEL for good (asks first, unless --yes).

    Only letters that exist when the command starts are deleted: one that
    arrives meanwhile survives.
    """
    admin, channel = _target(ctx, channel, group)
    out = output(ctx)
    if ids:
        count = len(ids)
    else:
        count = sum(len(page) for page in admin.all_dead_letters(channel, group))
    which = f" of group {group!r}" if group else ""
    if count and not yes:
        click.confirm(
            f"Delete {count} dead letter(s){which} of {safe(channel)}?",
            abort=True,
            err=True,
        )
    deleted = 0
    with out.progress("purging", count) as bar:
        for page in _chosen(admin, channel, group, ids):
            deleted += admin.purge_dead_letters(channel, page)
            bar.advance(bar.task_ids[0], len(page))
    if out.json:
        out.document({"channel": channel, "deleted": deleted})
    else:
        out.line(f"deleted {deleted} dead letter(s){which} of {safe(channel)}")
