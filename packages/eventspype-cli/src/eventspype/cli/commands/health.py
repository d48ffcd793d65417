"""``eventspype health``: an exit status for a Kubernetes exec probe or a cron check."""

from __future__ import annotations

import click

from eventspype.broker.redis import Readiness, UnknownGroup
from eventspype.cli.commands._common import json_option, output, session_of

__all__ = ["health"]


@click.command()
@click.option("--group", "-g", metavar="GROUP", help="Judge only this group's streams.")
@click.option(
    "--max-lag",
    type=click.IntRange(min=0),
    metavar="N",
    help="Not ready when the summed lag is above N.",
)
@click.option(
    "--max-pending",
    type=click.IntRange(min=0),
    metavar="N",
    help="Not ready when the summed pending entries are above N.",
)
@click.option(
    "--max-dead",
    type=click.IntRange(min=0),
    metavar="N",
    help="Not ready when the dead letters are more than N.",
)
@json_option
@click.pass_context
def health(
    ctx: click.Context,
    group: str | None,
    max_lag: int | None,
    max_pending: int | None,
    max_dead: int | None,
) -> None:
    """Exit 0 when Redis answers and the streams are within the limits, else 1,
    with a one-line reason.

    An unreachable server is "not ready" (exit 1), as is an unknown --group:
    a probe with a typo fails instead of passing.
    """
    session = session_of(ctx)
    try:
        admin = session.admin
    except Exception as error:  # URL or connection: the probe's answer is "no"
        reason = f"cannot reach Redis: {error}"
        verdict_ready = False
        facts: dict[str, object] = {"connected": False}
    else:
        try:
            verdict = admin.readiness(group, max_lag, max_dead, max_pending)
        except UnknownGroup as error:
            verdict = Readiness(False, str(error), connected=True)
        verdict_ready, reason = verdict.ready, verdict.reason
        facts = {
            "connected": verdict.connected,
            "streams": verdict.streams,
            "lag": verdict.lag,
            "pending": verdict.pending,
            "dead_letters": verdict.dead_letters,
        }
    out = output(ctx)
    if out.json:
        out.document({"ready": verdict_ready, "reason": reason, **facts})
    else:
        out.line(("ready: " if verdict_ready else "not ready: ") + reason)
    ctx.exit(0 if verdict_ready else 1)
