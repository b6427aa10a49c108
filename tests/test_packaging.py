"""The installed package, not the checkout: a non-editable wheel works from any directory.

One test builds the wheel from a temporary copy of the repository, checks what it holds,
installs it into a temporary target and runs ``crosscheck run`` from outside the
repository with ``python -S`` (so the editable install's ``.pth`` cannot put the checkout
back on the path), importing only the wheel and the venv's third-party packages.
"""

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from crosscheck.declaring import cases
from crosscheck.frameworks import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
# Not part of the source: environments, build outputs, caches, reports.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", ".nox", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".ruff_cache", ".hypothesis", "report", "site")

PIP = [sys.executable, "-m", "pip", "-q", "--no-cache-dir", "--disable-pip-version-check"]


def _run(args, **kwargs):
    r = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert r.returncode == 0, f"{' '.join(map(str, args))} exited {r.returncode}:\n{r.stdout}{r.stderr}"
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built by pip from a copy of the repository (the checkout stays untouched)."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = shutil.copytree(ROOT, tmp / "source", ignore=NOT_SOURCE)
    _run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(source)], cwd=tmp)
    (built,) = (tmp / "dist").glob("backprop_crosscheck-*.whl")
    return built


@pytest.mark.packaging
def test_wheel_holds_the_package_data_and_no_generic_top_level_names(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith((".dist-info", ".data"))}
    assert top == {"crosscheck"}, f"top-level names in {wheel.name}: {sorted(top)}, expected ['crosscheck']"
    printed = "crosscheck/reference/printed/"
    want = {f"{printed}{c}.txt" for c in cases.CASES} | {f"{printed}documents.sha256",
                                                         "crosscheck/frameworks/registry.py",
                                                         "crosscheck/templates/report.html.j2",
                                                         "crosscheck/templates/result.html.j2"}
    want |= {fw.module.replace(".", "/") + ".py" for fw in REGISTRY.values()}
    assert want <= set(names), f"{wheel.name} lacks {sorted(want - set(names))}"


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.packaging
def test_installed_wheel_runs_from_another_directory(wheel, tmp_path):
    target, elsewhere = tmp_path / "target", tmp_path / "elsewhere"
    elsewhere.mkdir()
    _run([*PIP, "install", "--no-deps", "--target", str(target), str(wheel)])
    # -S: no site, so no .pth: the wheel's crosscheck and the venv's numpy, torch, jax only.
    env = {"PYTHONPATH": f"{target}:{sysconfig.get_paths()['purelib']}", "PATH": "/usr/bin:/bin",
           "HOME": str(Path.home())}
    where = _run([sys.executable, "-S", "-c", "import crosscheck; print(crosscheck.__file__)"],
                 cwd=elsewhere, env=env).stdout.strip()
    assert Path(where).is_relative_to(target), f"crosscheck imported from {where}, not the wheel in {target}"
    r = subprocess.run([sys.executable, "-S", "-m", "crosscheck.cli", "run", "sgd_linear"],
                       capture_output=True, text=True, timeout=300, cwd=elsewhere, env=env)
    assert r.returncode == 0 and "agree" in r.stdout, (
        f"installed `crosscheck run sgd_linear` exited {r.returncode} (expected 0 and 'agree'):\n"
        f"{r.stdout}{r.stderr}")
    assert "Traceback" not in r.stderr, r.stderr
