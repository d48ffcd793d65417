"""Packaging guards: the shared ``eventspype`` namespace survives split installs.

Each scenario runs in a brand-new virtual environment (uv) so that what is
installed is exactly what the scenario says: core alone, a sibling added as a
wheel or editable, a sibling removed again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ROOT / "packages"

pytestmark = pytest.mark.slow


def _uv() -> list[str]:
    try:
        from uv import find_uv_bin
    except ImportError:
        found = shutil.which("uv")
        if found is None:
            pytest.fail("the packaging guard needs uv (pip install uv)")
        return [found]
    return [str(find_uv_bin())]


def _run(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wheels of the three code distributions, built from this checkout."""
    out = tmp_path_factory.mktemp("wheels")
    built = {}
    for dist in ("eventspype-core", "eventspype-serializers"):
        target = out / dist
        _run(
            *_uv(),
            "build",
            "--wheel",
            "--quiet",
            "-o",
            str(target),
            str(PACKAGES / dist),
        )
        (built[dist],) = target.glob("*.whl")
    return built


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    path = tmp_path / "venv"
    _run(*_uv(), "venv", "--quiet", "--python", sys.executable, str(path))
    return path


def _python(venv: Path) -> str:
    return str(venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))


def _pip(venv: Path, *args: str) -> None:
    _run(*_uv(), "pip", *args, "--quiet", "--python", _python(venv))


def _check(venv: Path, code: str) -> str:
    # Run from a neutral directory so the checkout is not on sys.path.
    return _run(_python(venv), "-c", textwrap.dedent(code), cwd=venv)


CORE_ALONE = """
    import eventspype, eventspype.broker
    from eventspype import EventPublication, EventPublisher, LocalBroker
    for name, dist in [("JsonEventSerializer", "eventspype-serializers"),
                       ("EventSerializer", "eventspype-serializers")]:
        try:
            getattr(eventspype, name)
        except ImportError as error:
            assert f"pip install {dist}" in str(error), error
        else:
            raise AssertionError(f"{name} imported without {dist}")
    try:
        from eventspype.broker import RedisBroker
    except ImportError as error:
        assert "pip install eventspype-redis" in str(error), error
    else:
        raise AssertionError("RedisBroker imported without eventspype-redis")
    print("core-alone-ok")
"""

WITH_SERIALIZERS = """
    import dataclasses
    import eventspype
    from eventspype import JsonEventSerializer, LocalBroker
    from eventspype.broker.serializer import make_json_safe
    import eventspype.serializers

    @dataclasses.dataclass
    class Ping:
        n: int

    data = JsonEventSerializer().serialize(Ping(3))
    assert JsonEventSerializer().deserialize(data, Ping) == Ping(3)
    print(eventspype.serializers.__file__)
"""


def test_core_alone_has_no_siblings_and_says_what_to_install(
    venv: Path, wheels: dict[str, Path]
) -> None:
    _pip(venv, "install", str(wheels["eventspype-core"]))
    assert "core-alone-ok" in _check(venv, CORE_ALONE)


def test_editable_sibling_merges_into_installed_core(
    venv: Path, wheels: dict[str, Path]
) -> None:
    _pip(venv, "install", str(wheels["eventspype-core"]))
    _pip(venv, "install", "--no-deps", "-e", str(PACKAGES / "eventspype-serializers"))
    _pip(venv, "install", "msgspec")
    location = _check(venv, WITH_SERIALIZERS).strip()
    # The sibling is imported from its source tree, core from site-packages:
    # only pkgutil.extend_path in core's __init__ makes that one package.
    assert location.startswith(str(PACKAGES / "eventspype-serializers" / "src"))


@pytest.mark.parametrize("editable", [False, True], ids=["wheel", "editable"])
def test_uninstalling_a_sibling_leaves_core_intact(
    venv: Path, wheels: dict[str, Path], editable: bool
) -> None:
    _pip(venv, "install", str(wheels["eventspype-core"]))
    sibling = (
        ["-e", str(PACKAGES / "eventspype-serializers")]
        if editable
        else [str(wheels["eventspype-serializers"])]
    )
    _pip(venv, "install", *sibling)
    _check(venv, WITH_SERIALIZERS)
    _pip(venv, "uninstall", "eventspype-serializers")
    # Core's shared files are still there and core still works, and the
    # sibling's names are back to the install hint.
    assert "core-alone-ok" in _check(venv, CORE_ALONE)
