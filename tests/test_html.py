"""The HTML report (``crosscheck run --html``): one self-contained page, its summary line,
and what a real browser (headless Chromium, where installed) renders of it."""

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from crosscheck.cli import EXIT_MISMATCH, EXIT_USAGE, main
from crosscheck.frameworks import FRAMEWORKS

# Every test here looks at a run of both frameworks.
pytestmark = [pytest.mark.torch, pytest.mark.jax]

REPO = Path(__file__).resolve().parent.parent
PLANTED = str(REPO / "examples" / "planted_mistake.py")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "no chromium on PATH: install it with `apt-get update && apt-get install chromium`"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """One page of a document case and a user's model with a planted mistake: (exit code,
    stdout, the page's text, its path)."""
    import contextlib
    import io

    path = tmp_path_factory.mktemp("html") / "index.html"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["run", "sgd_linear", PLANTED, "--html", str(path)])
    return code, out.getvalue(), path.read_text(encoding="utf-8"), path


def test_the_run_exits_with_the_mismatch(page):
    code, out, _, _ = page
    assert code == EXIT_MISMATCH, f"sgd_linear + planted_mistake: exit {code}\n{out[-2000:]}"


def test_the_run_ends_with_a_summary_and_where_the_page_went(page):
    _, out, _, path = page
    last = out.strip().splitlines()[-1]
    want = ("2 cases x 2 frameworks: 2 agree, 2 mismatch; transcripts 1/1 match the documents; "
            f"wrote HTML {path}")
    assert last == want, f"last line {last!r}, expected {want!r}"


def test_the_page_loads_nothing_from_outside(page):
    _, _, text, _ = page
    outside = re.findall(r'(?:src|href)="(?!data:|#)([^"]*)"', text) + re.findall(r"<link\b", text)
    assert not outside, f"the page refers outside itself: {outside[:5]}"


def test_every_case_embeds_its_three_plots_as_png(page):
    _, _, text, _ = page
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', text)
    alts = [alt for _, alt in images]
    for case in ("sgd_linear", "planted_mistake"):
        for what in ("errors against step", "loss", "parameters"):
            assert f"{case}: {what}" in alts, f"[{case}] no {what} plot in the page; images: {alts}"
    for data, alt in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n", f"[{alt}] not a PNG"


def test_the_table_has_a_row_per_case_and_framework_with_its_verdict(page):
    _, _, text, _ = page
    rows = re.findall(r'<tr><td><a href="#case-(\w+)">\w+</a></td><td>(\w+)</td>.*?<td class="(ok|bad)">',
                      text, re.S)
    got = {(case, fw): cls for case, fw, cls in rows}
    want = {("sgd_linear", "torch"): "ok", ("sgd_linear", "jax"): "ok",
            ("planted_mistake", "torch"): "bad", ("planted_mistake", "jax"): "bad"}
    assert got == want, f"verdict rows {got}, expected {want}"


def test_a_mismatch_says_where_and_what_to_run_next(page):
    _, _, text, _ = page
    assert "manual backward wrong at step 0: grad[b]" in text, "the first divergence is not in the page"
    assert f"crosscheck explain {PLANTED}:planted_mistake --step 0" in text, "no next step for the reader"


def test_an_unwritable_page_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "dir").mkdir()
    assert main(["run", "sgd_linear", "--html", str(tmp_path / "dir")]) == EXIT_USAGE
    assert "--html" in capsys.readouterr().err


# ------------------------------------------------------------------------------ in a browser
def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_chromium_renders_every_image_with_a_real_size(page, tmp_path):
    *_, path = page
    dom = _chromium("--dump-dom", path.as_uri(), cwd=tmp_path).stdout
    found = re.search(r'data-images="([^"]*)"', dom)
    assert found, f"the page's load script did not run in Chromium:\n{dom[-1000:]}"
    sizes = [tuple(map(int, s.split("x"))) for s in found[1].split()]
    assert len(sizes) == 6, f"Chromium rendered {len(sizes)} images, expected 6: {sizes}"
    assert all(w >= 600 and h >= 300 for w, h in sizes), f"an image has no real size: {sizes}"
    assert 'id="verdicts"' in dom, "no verdict table in the rendered page"


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_chromium_screenshot_shows_the_page(page, tmp_path):
    from matplotlib import image

    *_, path = page
    shot = tmp_path / "shot.png"
    _chromium("--window-size=1300,2400", f"--screenshot={shot}", path.as_uri(), cwd=tmp_path)
    assert shot.is_file(), "Chromium wrote no screenshot"
    pixels = image.imread(shot)
    assert pixels.shape[:2] == (2400, 1300), f"screenshot {pixels.shape}"
    assert float(np.std(pixels)) > 0.05, "the screenshot is blank"


def test_the_kink_table_shows_each_spellings_expected_derivative(page):
    """Beside each measured derivative at 0, what the installed version's recorded
    expectation says (``-`` for a release without one), as ``crosscheck kinks`` shows it."""
    import html

    from crosscheck.judging import kinks
    from crosscheck.running.versions import installed

    _, _, text, _ = page
    assert 'id="kinks"' in text, "a run of both frameworks wrote a page without its kink table"
    table = text.split('id="kinks"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr><td>(torch|jax)</td><td><code>(.*?)</code></td><td class="num">(.*?)</td>\n'
                      r'<td class="num( bad)?">(.*?)</td>', table)
    assert len(rows) == sum(len(kinks.SPELLINGS[fw]()) for fw in FRAMEWORKS), f"kink rows: {rows}"
    for fw, spelling, measured, bad, shown in rows:
        spelling = html.unescape(spelling)
        expected = kinks.expectation(fw, installed(fw))
        recorded = None if expected is None else expected.at_zero.get(spelling)
        want = "-" if recorded is None else f"{recorded:g}"
        assert shown == want, f"[{fw}] {spelling}: the page says expected {shown}, the record {want}"
        assert bool(bad) == (want != "-" and measured != want), \
            f"[{fw}] {spelling}: measured {measured}, expected {shown}, marked bad: {bool(bad)}"


def test_a_spelling_that_differs_as_recorded_is_not_marked(tmp_path):
    """clamp's derivative 1 at 0 differs from the reference's 0, as its version's record says:
    advice for writing a forward, not a failure, so nothing on its row is marked."""
    from crosscheck.judging import kinks
    from crosscheck.reporting import html

    row = kinks.Row("torch", "x.clamp(min=0)", 1.0, False, version="2.13.0", expected=1.0,
                    kink_case_agrees=False, kink_case_error=0.1)
    text = html.render([], "float64", tmp_path, kinks=[row])
    table = text.split('id="kinks"', 1)[1].split("</table>", 1)[0]
    assert 'class="bad"' not in table and "bad" not in re.findall(r'class="([^"]*)"', table), (
        f"[torch] x.clamp(min=0): derivative 1 at 0, as recorded, marked on the page:\n{table}")


def test_a_derivative_off_its_expectation_is_marked_on_the_page(tmp_path):
    """A planted row (a torch 2.13.0 whose torch.relu has derivative 1 at 0, where the record
    expects 0): its expected cell is marked, and says 0."""
    from crosscheck.judging import kinks
    from crosscheck.reporting import html

    row = kinks.Row("torch", "torch.relu(x)", 1.0, False, version="2.13.0", expected=0.0)
    text = html.render([], "float64", tmp_path, kinks=[row])
    cells = re.findall(r'<td class="num">1</td>\n<td class="num( bad)?">(.*?)</td>', text)
    assert cells == [(" bad", "0")], f"[torch] torch.relu(x): measured 1, expected 0; page cells {cells}"
