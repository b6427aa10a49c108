"""Strict test configuration: the document's BLAS kernel selected before NumPy loads,
warnings are errors (pyproject), and float64 really in effect.

One marker per framework, ``torch`` and ``jax``, on every test that runs it, so that
``pytest -m "not torch"`` runs the rest cleanly where torch is broken (nothing here imports
a framework). A test gets them from its parameters (a ``fw`` of ``"jax"``: :data:`FRAMEWORK_PARAMS`),
from the fixtures below that run both (:data:`BOTH_FRAMEWORKS`), or from its own ``@pytest.mark.torch`` /
``@pytest.mark.jax`` (``pytestmark`` for a whole module); to a test, a framework it is not
marked for is unavailable (:func:`framework_marks_are_honest`)."""

import crosscheck  # noqa: F401  (must come before numpy: selects the BLAS kernel)

# isort: split
import functools
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from crosscheck.frameworks import registry as fw_registry
from crosscheck.reporting import baseline
from crosscheck.running import runner

# Hypothesis: a fast, reproducible profile for `make test`, a thorough one for development.
settings.register_profile("ci", max_examples=12, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption("--baseline-dir", type=Path, default=baseline.DIR,
                     help="folder of the regression baselines (default: tests/test_baselines)")


def pytest_report_header(config):
    return baseline.header(config.getoption("baseline_dir"))


def pytest_configure(config):
    # An in-process `crosscheck run` without --jobs runs in this process alone: pytest-xdist's
    # workers already fill the cores, and a helper process costs a second or two to start
    # (spawn, imports, JAX's compilations) for runs of a tenth of that. The helper's path is
    # tested where a test says --jobs 2, and by every test that runs crosscheck as a process.
    from crosscheck import cli

    cli.DEFAULT_JOBS = 1
    config.addinivalue_line("markers", "packaging: builds, installs and runs the wheel")
    config.addinivalue_line("markers", "readme: runs a command shown in README.md or docs/")
    config.addinivalue_line("markers", "docs: builds the documentation site (mkdocs.yml, docs/)")
    for fw in FRAMEWORKS:
        config.addinivalue_line("markers", f"{fw}: runs {fw} (-m 'not {fw}' leaves it out where broken)")


#: The frameworks, without importing one (crosscheck.frameworks imports them on demand).
FRAMEWORKS = fw_registry.FRAMEWORKS

#: Parameters that name the framework a test runs (``impl`` may also be ``"numpy"``).
FRAMEWORK_PARAMS = {"fw", "impl"}

#: Fixtures that run both frameworks: a test that uses one, directly or through another
#: fixture, is marked for both.
BOTH_FRAMEWORKS = {"frameworks_ran", "cli_json", "checked"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        used = {v for k, v in params.items() if k in FRAMEWORK_PARAMS and v in FRAMEWORKS}
        if BOTH_FRAMEWORKS & set(getattr(item, "fixturenames", ())):
            used |= set(FRAMEWORKS)
        for fw in sorted(used - {m.name for m in item.iter_markers()}):
            item.add_marker(fw)


@pytest.fixture(autouse=True)
def framework_marks_are_honest(request, monkeypatch):
    """In this process, a framework a test is not marked for is unavailable to it, as it is
    where that framework is broken: a test that needs it fails here, naming the marker it
    lacks, and one that copes without it (the referee) passes as it would there. Runs in a
    helper process or a subprocess are not seen; the suite under a broken framework sees those."""
    from crosscheck import frameworks
    from crosscheck.running.versions import installed

    marked = {m.name for m in request.node.iter_markers()} & set(FRAMEWORKS)
    if marked == set(FRAMEWORKS):
        return
    load = frameworks.load

    def guarded(fw):
        if fw not in marked:
            raise frameworks.FrameworkUnavailable(
                fw, installed(fw), f"{request.node.nodeid} is not marked {fw} (@pytest.mark.{fw}, or a "
                                   "parameter or fixture that says so: tests/conftest.py)")
        return load(fw)

    monkeypatch.setattr(frameworks, "load", guarded)


@pytest.fixture(scope="session")
def runs():
    """``runs(case, framework, **overrides)``: each run, computed once per test session."""
    cache = {}

    def get(case, framework="numpy", **overrides):
        key = (case, framework, tuple(sorted(overrides.items())))
        if key not in cache:
            cache[key] = runner.run(case, framework, **overrides)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def reference_runs(runs):
    return lambda case: runs(case, "numpy")


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


@pytest.fixture(scope="session")
def cli_json():
    """``cli_json(*args)``: ``crosscheck run *args --json -`` in this process, once per test
    session: (exit code, the JSON report, stderr)."""
    import contextlib
    import io
    import json

    from crosscheck.cli import main

    cache = {}

    def run(*args):
        if args not in cache:
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["run", *args, "--json", "-"])
            text = out.getvalue()
            cache[args] = code, json.loads(text) if text else None, err.getvalue()
        return cache[args]

    return run


@pytest.fixture(scope="session")
def nightly(cli_json, tmp_path_factory):
    """A report as the nightly job writes it, once per test session: (exit code, the JSON,
    stderr) of ``crosscheck run relu sgd_two_relu --html PATH --json -`` (``--html``, so the
    JSON carries the kink table). relu settles onto a cycle with a unit dead from step 255;
    sgd_two_relu has a unit dead throughout and errors that are exactly 0."""
    page = tmp_path_factory.mktemp("nightly") / "report.html"
    return cli_json("relu", "sgd_two_relu", "--html", str(page))


@pytest.fixture(scope="session")
def checked():
    """``checked(spec)``: ``crosscheck.check`` of the one model ``spec`` names (``file.py`` or
    ``file.py:name``), once per test session."""
    from crosscheck import check
    from crosscheck.declaring.model import load

    cache = {}

    def get(spec):
        if spec not in cache:
            (model,) = load(str(spec))
            cache[spec] = check(model)
        return cache[spec]

    return get


@functools.cache
def import_package() -> None:
    """Every module of the package imported, and array-api-compat's NumPy namespace made,
    before a test runs pytester in this process: pytester drops the modules a test imported
    when it ends, so a module first imported inside its run is imported again afterwards as
    another object (the helper process's start function no longer pickles as itself), and
    NumPy's extensions (numpy.fft, which that namespace imports) cannot be loaded twice."""
    import importlib
    import pkgutil

    from crosscheck.declaring.model import _numpy_xp

    here = [str(Path(crosscheck.__file__).parent)]   # (its __path__ holds the source tree's root too)
    for info in pkgutil.walk_packages(here, "crosscheck."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    _numpy_xp()


@pytest.fixture(scope="session")
def frameworks_ran():
    """torch and JAX imported, and one run of each done, before any test that asks for this:
    pytester drops the modules a test imported when it ends, and torch crashes the process
    when it is imported a second time (and :func:`import_package`)."""
    import_package()
    for fw in runner.IMPLEMENTATIONS[1:]:
        runner.run("sgd_linear", fw)
