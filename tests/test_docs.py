"""The documentation site builds, strictly (``mkdocs build --strict``, as ``make docs`` does):
every page of docs/ in mkdocs.yml's nav, every link and anchor between pages, and every API
reference (mkdocstrings) resolved and rendered from the docstrings. Built into a temporary
folder, never into site/."""

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MISSING = [m for m in ("mkdocs", "material", "mkdocstrings") if importlib.util.find_spec(m) is None]

#: The API reference's objects (their anchors) and a phrase of each docstring.
API = {
    "crosscheck.declaring.model.Model": "A user's model and its hand-written backward.",
    "crosscheck.declaring.model.ModelError": "A model that cannot be checked as declared",
    "crosscheck.api.check": "hand-written training beside each framework's autograd",
    "crosscheck.api.Result": "every framework agrees with the model's manual backward",
    "crosscheck.points.check_gradient": "at its initial values and draws random points",
    "crosscheck.points.GradientResult": "per framework, the manual gradient against its",
    "crosscheck.testing.assert_backprop_matches": "agrees with every framework's autograd",
    "crosscheck.testing.assert_gradient_matches": "at its initial values and draws random points",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                        str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, f"mkdocs build --strict failed (make docs shows the same):\n{r.stderr[-4000:]}"
    return out


def text_of(page: Path) -> str:
    """A built page's text: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))).split())


@pytest.mark.docs
@pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed: the documentation "
                    "tools come with the test extra (pip install -e '.[test]', as make test does)")
def test_site_builds_strictly_and_renders_the_api_docstrings(site):
    page = site / "reference" / "python-api" / "index.html"
    raw, text = page.read_text(encoding="utf-8"), text_of(page)
    for anchor, phrase in API.items():
        assert f'id="{anchor}"' in raw, f"the API reference has no entry for {anchor} ({page})"
        assert phrase in text, f"{anchor}'s docstring ({phrase!r}) is not rendered in {page}"
    plugin = text_of(site / "reference" / "pytest-plugin" / "index.html")
    assert "backprop_baseline(model, **overrides)" in plugin, "the pytest plugin's fixture is not documented"
