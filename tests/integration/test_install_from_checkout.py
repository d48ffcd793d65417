"""The README's command that installs a distribution with its siblings from
this checkout works with plain pip in a fresh virtual environment, and its
table lists, for every distribution, exactly the siblings it needs."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MARKER = "<!-- install-from-checkout -->"


def _marked_command() -> list[str]:
    after = README.split(MARKER, 1)[1]
    block = re.search(r"```sh\n(.+?)\n```", after, re.DOTALL)
    assert block is not None, f"no sh block after {MARKER} in README.md"
    (line,) = block.group(1).strip().splitlines()
    return shlex.split(line)


def _table_rows() -> dict[str, set[str]]:
    """README rows ``| `dist` ... | `./packages/a ./packages/b` |``."""
    rows = {}
    for match in re.finditer(
        r"^\| `([\w-]+)`[^|]*\| `(\./packages/[^`]+)` \|$", README, re.M
    ):
        rows[match.group(1)] = set(match.group(2).split())
    return rows


def _sibling_closure(distribution: str) -> set[str]:
    """``distribution`` and every eventspype distribution it requires, transitively."""
    found = {distribution}
    todo = [distribution]
    while todo:
        for requirement in importlib.metadata.requires(todo.pop()) or []:
            if "extra ==" in requirement:
                continue
            name = re.match(r"[\w.-]+", requirement).group(0).lower()  # type: ignore[union-attr]
            if name.startswith("eventspype") and name not in found:
                found.add(name)
                todo.append(name)
    return found


def test_the_marked_command_installs_paths_of_this_checkout() -> None:
    command = _marked_command()
    assert command[:4] == ["python3", "-m", "pip", "install"]
    for path in command[4:]:
        assert path.startswith("./packages/")
        assert (ROOT / path / "pyproject.toml").is_file(), path


@pytest.mark.parametrize("distribution", sorted(_table_rows()))
def test_each_row_lists_the_distribution_and_exactly_its_siblings(
    distribution: str,
) -> None:
    listed = _table_rows()[distribution]
    if not (ROOT / "packages" / distribution).is_dir():
        pytest.skip(f"{distribution} is not in this checkout yet")
    try:
        needed = _sibling_closure(distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed here")
    paths = {f"./packages/{name}" for name in needed}
    # A listed path that is not in the checkout (a distribution still being
    # built on another branch) is not checked; everything needed must be there.
    present = {p for p in listed if (ROOT / p).is_dir()}
    assert present == paths


@pytest.mark.slow
def test_the_command_works_in_a_fresh_venv_with_plain_pip(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    command = [str(python), *_marked_command()[1:]]
    installed = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    wanted = {Path(p).name for p in _marked_command()[4:]}
    check = textwrap.dedent(
        """
        import eventspype
        from eventspype.broker.redis import RedisBroker
        from eventspype import JsonEventSerializer
        print(sorted(eventspype.versions()))
        """
    )
    # From a neutral directory, so that the checkout is not on sys.path.
    result = subprocess.run(
        [str(python), "-c", check],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == repr(sorted(wanted))
