"""``eventspype streams``: every stream of the prefix, its groups and consumers."""

from __future__ import annotations

import click

from eventspype.cli.commands._common import json_option, output, session_of
from eventspype.cli.output import when

__all__ = ["streams"]


@click.command()
@click.option("--group", "-g", metavar="GROUP", help="Show only this consumer group.")
@json_option
@click.pass_context
def streams(ctx: click.Context, group: str | None) -> None:
    """Streams: length, first and last entry, groups, consumers (idle time),
    pending, lag, dead letters.

    Read-only: no group is joined, nothing is acknowledged. Lag is what the
    group has not read yet ("?" when Redis cannot tell, after trimming);
    pending is what its consumers hold unacknowledged.
    """
    out = output(ctx)
    with out.progress("reading streams", None) as bar:
        task = bar.task_ids[0]
        infos = session_of(ctx).admin.streams(
            group, lambda done, total: bar.update(task, completed=done, total=total)
        )
    if out.json:
        out.document({"streams": infos})
        return
    if not infos:
        out.line(f"no streams under prefix {session_of(ctx).prefix!r}")
        return
    out.table(
        "Streams",
        [
            "channel",
            "length",
            "first entry (UTC)",
            "last entry (UTC)",
            "groups",
            "dead",
        ],
        [
            [
                i.channel,
                i.length,
                when(i.first_entry),
                when(i.last_entry),
                len(i.groups),
                i.dead_letters,
            ]
            for i in infos
        ],
    )
    groups = [(i.channel, g) for i in infos for g in i.groups]
    if groups:
        out.line("")
        out.table(
            "Groups",
            ["channel", "group", "consumers", "pending", "lag", "last delivered"],
            [
                [
                    channel,
                    g.name,
                    len(g.consumers),
                    g.pending,
                    "?" if g.lag is None else g.lag,
                    g.last_delivered_id,
                ]
                for channel, g in groups
            ],
        )
    consumers = [(c, g.name, m) for c, g in groups for m in g.consumers]
    if consumers:
        out.line("")
        out.table(
            "Consumers",
            ["channel", "group", "consumer", "pending", "idle (s)"],
            [[c, g, m.name, m.pending, f"{m.idle:.1f}"] for c, g, m in consumers],
        )
