"""How the commands print: rich tables for people, one JSON document for scripts.

Everything shown may come from Redis, so from anyone who can write there:
each text goes through :func:`safe` (control characters, escape sequences
included, are shown escaped, never sent to the terminal), and rich's markup
is off (a ``[bold]`` in a channel name is text). Colour and progress bars
appear only on a terminal; elsewhere the table is plain text of a fixed
width, so a script or a log gets the same lines every time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

__all__ = ["Output", "as_json", "safe", "when"]

#: Width of tables printed to something that is not a terminal.
PLAIN_WIDTH = 160


def safe(value: object) -> str:
    """``value`` as text with every unprintable character escaped (``\\x1b``)."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def when(moment: datetime | None) -> str:
    """A UTC time as ``2026-12-07 09:01:22.123``, or ``-``."""
    if moment is None:
        return "-"
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def as_json(document: Any) -> str:
    """``document`` as one line of JSON (datetimes ISO 8601, bytes as text).

    ``ensure_ascii`` keeps every control character escaped.
    """
    return json.dumps(document, default=_plain, ensure_ascii=True)


class Output:
    """Where a command writes: stdout, a table or JSON (see the module docs)."""

    def __init__(self, json_output: bool, file: Any = None) -> None:
        self.json = json_output
        stream = file if file is not None else sys.stdout
        terminal = stream.isatty() if hasattr(stream, "isatty") else False
        self.console = Console(
            file=stream,
            markup=False,
            highlight=False,
            emoji=False,
            width=None if terminal else PLAIN_WIDTH,
            force_terminal=terminal or None,
            no_color=not terminal,
        )
        self.terminal = terminal

    def document(self, document: Any) -> None:
        """Print ``document`` as one line of JSON."""
        self.console.file.write(as_json(document) + "\n")
        self.console.file.flush()

    def line(self, text: str, style: str | None = None) -> None:
        """Print one line (already :func:`safe`)."""
        self.console.print(Text(text, style=style or ""), soft_wrap=True)

    def table(
        self, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> None:
        """A table of ``rows`` (each cell shown through :func:`safe`)."""
        table = Table(title=title or None, title_justify="left", box=None)
        for column in columns:
            numeric = column.lower() in _NUMERIC
            table.add_column(column, justify="right" if numeric else "left")
        for row in rows:
            table.add_row(*(Text(safe(cell)) for cell in row))
        self.console.print(table)

    @contextmanager
    def progress(self, what: str, total: int | None) -> Iterator[Progress]:
        """A progress bar on a terminal (none in JSON mode or elsewhere)."""
        bar = Progress(
            TextColumn(what),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
            disable=self.json or not self.terminal,
            transient=True,
        )
        with bar:
            bar.add_task(what, total=total)
            yield bar


_NUMERIC = frozenset(
    {"length", "pending", "lag", "dead", "consumers", "deliveries", "idle (s)"}
)
