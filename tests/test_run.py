"""``crosscheck run``: exit codes, the JSON contract, plots, determinism, progress."""

import dataclasses
import fcntl
import json
import os
import pty
import re
import socket
import stat
import struct
import subprocess
import sys
import termios
import threading

import numpy as np
import pytest

from crosscheck import frameworks
from crosscheck.cli import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, main
from crosscheck.declaring import cases as case_registry
from crosscheck.frameworks import FRAMEWORKS
from crosscheck.reporting import report
from crosscheck.running import blas


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "crosscheck", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def run_json(capsys, *args, jobs="1"):
    # In-process runs use one process (JAX compiles once per test session); the two-process
    # default is exercised by the tests that start a real `crosscheck run`.
    code = main(["run", *args, "--json", "-", "--jobs", jobs])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


@pytest.mark.torch
@pytest.mark.jax
def test_agreement_exits_0(capsys):
    code, report, _ = run_json(capsys, "sgd_linear", "linear_nobias")
    assert code == EXIT_OK
    assert all(fw["agree"] for c in report["cases"].values() for fw in c["frameworks"].values())


@pytest.mark.torch
@pytest.mark.jax
def test_mismatch_exits_1_and_names_the_place(capsys, monkeypatch):
    real = frameworks.train

    def perturbed(framework, problem, dtype="float64", progress=None):
        traj = real(framework, problem, dtype, progress)
        if framework == "torch":
            traj.grads["b"][7] *= 1 + 1e-6                 # one gradient, one step, off by 1e-6
        return traj

    monkeypatch.setattr(frameworks, "train", perturbed)
    code, report, _ = run_json(capsys, "sgd_linear")
    assert code == EXIT_MISMATCH
    torch, jax = (report["cases"]["sgd_linear"]["frameworks"][fw] for fw in ("torch", "jax"))
    assert not torch["agree"] and jax["agree"]
    first = torch["first_divergence"]
    assert (first["step"], first["quantity"], first["parameter"]) == (7, "grad", "b"), first


@pytest.mark.torch
@pytest.mark.jax
def test_divergence_exits_1_same_step_everywhere_and_other_cases_still_run(capsys):
    code, report, err = run_json(capsys, "linear_nobias", "sgd_linear", "--lr", "0.1")
    assert code == EXIT_MISMATCH
    assert "Traceback" not in err
    case = report["cases"]["linear_nobias"]
    assert case["dynamics"]["kind"] == "diverging"
    start = case["dynamics"]["start_step"]
    for fw, r in case["frameworks"].items():
        assert r["dynamics"]["kind"] == "diverging" and r["dynamics"]["start_step"] == start, (fw, r)
        assert r["agree"], f"[linear_nobias/{fw}] NaN positions must compare equal: {r['first_divergence']}"
    assert report["cases"]["sgd_linear"]["dynamics"]["kind"] == "converging"


BAD = {
    "unknown-case": ["run", "nope"],
    "unknown-framework": ["run", "--framework", "mxnet"],
    "unknown-option": ["run", "--frobnicate"],
    "lr-not-a-number": ["run", "--lr", "fast"],
    "lr-negative": ["run", "--lr", "-0.1"],
    "lr-zero": ["run", "--lr", "0"],
    "lr-nan": ["run", "--lr", "nan"],
    "lr-inf": ["run", "--lr", "inf"],
    "epochs-zero": ["run", "--epochs", "0"],
    "epochs-fraction": ["run", "--epochs", "1.5"],
    "dtype-float16": ["run", "--dtype", "float16"],
}


@pytest.mark.parametrize("argv", BAD.values(), ids=BAD.keys())
def test_usage_errors_exit_2_one_line_nothing_written(argv, capsys, tmp_path):
    out = tmp_path / "report.json"
    code = main([*argv, "--json", str(out), "--plots", str(tmp_path / "plots")])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE, f"{argv}: exit {code}"
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, captured
    assert not out.exists() and not (tmp_path / "plots").exists(), f"{argv}: wrote output on bad input"


def test_usage_error_has_no_traceback_in_a_real_process():
    r = run_cli("run", "--lr", "fast")
    assert r.returncode == EXIT_USAGE and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1


def test_json_to_a_directory_is_a_usage_error(tmp_path, capsys):
    assert main(["run", "sgd_linear", "--json", str(tmp_path)]) == EXIT_USAGE


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _unwritable(tmp_path):
    """A folder this process cannot create files in: mode 0o500, or for root (who ignores
    mode bits) sysfs, where no one can."""
    if os.geteuid() == 0:
        return "/sys"
    d = tmp_path / "read-only"
    d.mkdir(mode=0o500)
    return str(d)


# (option, path given, what the one line must name); {t} is the test's folder, which holds
# `afile` (a regular file), `socket` (a Unix socket) and `dir` (a folder). A device or a
# named pipe is written to directly (tests/test_reliability.py).
BAD_PATHS = {
    "json-is-a-directory": ("--json", "{t}/dir", "is a directory"),
    "json-ends-in-a-slash": ("--json", "{t}/new/", "names a directory"),
    "json-parent-is-a-file": ("--json", "{t}/afile/x.json", "afile is not a directory"),
    "json-grandparent-is-a-file": ("--json", "{t}/afile/sub/x.json", "afile is not a directory"),
    "json-is-a-socket": ("--json", "{t}/socket", "not a regular file, a device or a FIFO"),
    "json-empty": ("--json", "", "empty path"),
    "json-unwritable": ("--json", "{ro}/sub/x.json", "cannot write in"),
    "plots-is-a-file": ("--plots", "{t}/afile", "not a directory"),
    "plots-under-a-file": ("--plots", "{t}/afile/sub", "afile is not a directory"),
    "plots-unwritable": ("--plots", "{ro}/plots", "cannot write in"),
    "plots-file-is-a-directory": ("--plots", "{t}", "sgd_linear_loss.png exists and is not a regular file"),
}


@pytest.mark.parametrize("option,path,why", BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_unusable_output_path_exits_2_before_any_work(option, path, why, tmp_path, capsys, monkeypatch):
    (tmp_path / "afile").write_text("x")
    with socket.socket(socket.AF_UNIX) as server:   # its file stays when it is closed
        server.bind(str(tmp_path / "socket"))
    (tmp_path / "dir").mkdir()
    (tmp_path / "sgd_linear_loss.png").mkdir()
    path = path.format(t=tmp_path, ro=_unwritable(tmp_path))
    before = _tree(tmp_path)

    def no_work(*args, **kwargs):
        raise AssertionError("the run started before the output path was checked")

    monkeypatch.setattr(report, "Workers", no_work)
    code = main(["run", "sgd_linear", option, path, "--jobs", "1"])
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE, f"{option} {path!r}: exit {code}, expected {EXIT_USAGE}; stderr {err!r}"
    assert out == "" and len(err.strip().splitlines()) == 1, f"{option} {path!r}: {out!r} {err!r}"
    assert err.startswith(f"crosscheck: error: {option}") and why in err, \
        f"{option} {path!r}: {err!r} should name the option and say {why!r}"
    assert _tree(tmp_path) == before, f"{option} {path!r}: wrote {set(_tree(tmp_path)) - set(before)}"


def test_unusable_plots_path_in_a_real_process_is_one_line(tmp_path):
    # The helper used to fail on it after the whole run, with three tracebacks.
    (tmp_path / "afile").write_text("x")
    r = run_cli("run", "sgd_linear", "--plots", str(tmp_path / "afile" / "sub"))
    assert r.returncode == EXIT_USAGE, f"exit {r.returncode}: {r.stderr}"
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert _tree(tmp_path) == ["afile"], _tree(tmp_path)


@pytest.mark.torch
@pytest.mark.jax
def test_missing_output_folders_are_created(tmp_path, capsys):
    out, pictures = tmp_path / "a" / "b" / "report.json", tmp_path / "c" / "d"
    assert main(["run", "sgd_linear", "--json", str(out), "--plots", str(pictures), "--jobs", "1"]) == EXIT_OK
    assert json.loads(out.read_text())["cases"]["sgd_linear"], "report not written"
    assert sorted(p.name for p in pictures.iterdir()) == ["sgd_linear_errors.png", "sgd_linear_loss.png",
                                                          "sgd_linear_params.png"]


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("umask", [0o027, 0o002], ids=["027", "002"])
def test_report_and_plot_modes_follow_the_umask(umask, tmp_path, capsys):
    old = os.umask(umask)
    try:
        code = main(["run", "sgd_linear", "--json", str(tmp_path / "r.json"), "--plots", str(tmp_path),
                     "--jobs", "1"])
    finally:
        os.umask(old)
    assert code == EXIT_OK
    want = 0o666 & ~umask
    for f in ("r.json", "sgd_linear_errors.png", "sgd_linear_loss.png", "sgd_linear_params.png"):
        mode = stat.S_IMODE((tmp_path / f).stat().st_mode)
        assert mode == want, f"{f}: mode {mode:o} under umask {umask:03o}, expected {want:o}"


@pytest.mark.torch
@pytest.mark.jax
def test_a_case_named_twice_runs_once(capsys):
    code = main(["run", "sgd_linear", "linear_nobias", "sgd_linear", "--json", "-", "--jobs", "1"])
    out = capsys.readouterr()
    assert code == EXIT_OK
    rows = [line.split()[:2] for line in out.err.splitlines() if line.startswith(("sgd_linear", "linear"))]
    assert rows == [["sgd_linear", "torch"], ["sgd_linear", "jax"], ["linear_nobias", "torch"],
                    ["linear_nobias", "jax"]], f"table rows {rows}"
    assert list(json.loads(out.out)["cases"]) == ["sgd_linear", "linear_nobias"]


@pytest.mark.torch
@pytest.mark.jax
def test_json_contract(capsys):
    code, report, _ = run_json(capsys, "relu", "sgd_two_relu", jobs="2")
    assert set(report) >= {"versions", "dtype", "cases"}
    assert set(report["versions"]) >= {"python", "numpy", "torch", "jax"}
    assert report["dtype"] == "float64"
    for name, case in report["cases"].items():
        for fw in FRAMEWORKS:
            r = case["frameworks"][fw]
            assert isinstance(r["agree"], bool), name
            assert set(r["max_rel_err"]) >= {"loss", "grads", "params"}, name
            assert all(isinstance(v, float) for v in r["max_rel_err"].values()), name
            assert r["first_divergence"] is None or set(r["first_divergence"]) >= {
                "step", "quantity", "parameter", "expected", "got"}, name
        d = case["dynamics"]
        assert d["kind"] in {"converging", "oscillating", "stalled", "diverging"}, name
        assert d["period"] is None or isinstance(d["period"], int), name
        assert isinstance(d["cycle_losses"], list), name
        for u in case["dead_units"]:
            assert set(u) >= {"layer", "unit", "samples"}, name
    assert report["kinks"] is None, f"kink table without --html: {report['kinks']}"


def test_json_carries_the_kink_table_the_page_shows(nightly):
    from crosscheck.judging import kinks

    recorded = nightly[1]["kinks"]
    measured = [dataclasses.asdict(row) for row in kinks.table()]
    assert recorded == measured, f"JSON kinks {recorded}\nmeasured here {measured}"


def test_the_versions_line_sits_between_the_table_and_the_summary(nightly):
    code, data, err = nightly
    lines = err.rstrip("\n").splitlines()
    want = "versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items())
    assert code == EXIT_OK and len(lines) > 2, f"exit {code}, stderr {err!r}"
    assert lines[-2] == want, f"line above the summary {lines[-2]!r}, expected {want!r}"
    assert lines[-1].startswith("2 cases x 2 frameworks: "), f"last line {lines[-1]!r} is not the summary"
    assert lines[-3] == "" and lines[-4].startswith("  -> "), f"above the versions: {lines[-4:-2]}"


def test_json_versions_are_those_imported(nightly):
    import platform

    import jax
    import jaxlib
    import torch

    imported = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                "jax": jax.__version__, "jaxlib": jaxlib.__version__}
    recorded = nightly[1]["versions"]
    for name, version in imported.items():
        assert recorded.get(name) == version, f"JSON {name} {recorded.get(name)!r}, imported {version}"
    assert recorded.get("blas") == blas.active_kernel(), f"JSON blas {recorded.get('blas')!r}"


@pytest.mark.torch
@pytest.mark.jax
def test_json_file_is_written_whole(tmp_path, capsys):
    out = tmp_path / "sub" / "report.json"
    assert main(["run", "sgd_linear", "--json", str(out), "--jobs", "1"]) == EXIT_OK
    assert json.loads(out.read_text())["cases"]["sgd_linear"]
    assert [p.name for p in out.parent.iterdir()] == ["report.json"], "temporary file left behind"


@pytest.mark.torch
@pytest.mark.jax
def test_plots_are_written_and_non_empty(tmp_path, capsys):
    assert main(["run", "sgd_two_relu", "--plots", str(tmp_path)]) == EXIT_OK
    for kind in ("loss", "params"):
        png = tmp_path / f"sgd_two_relu_{kind}.png"
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f"{png}: {len(data)} bytes"


@pytest.mark.torch
@pytest.mark.jax
def test_piped_output_has_no_progress_codes():
    r = run_cli("run", "sgd_linear")
    assert r.returncode == EXIT_OK, r.stderr
    assert "\r" not in r.stdout + r.stderr and "\x1b" not in r.stdout + r.stderr
    assert "sgd_linear" in r.stdout and r.stderr == ""


@pytest.mark.torch
@pytest.mark.jax
def test_progress_on_a_terminal_shows_steps_rate_and_time_left():
    # stderr on a pseudo-terminal, stdout a pipe: the bar goes to the terminal only.
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "crosscheck", "run", "relu", "--framework", "torch",
                          "--jobs", "1", "--epochs", "3000"], stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []

    def drain():
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:        # the terminal closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = p.communicate(timeout=300)
    reader.join(timeout=10)
    os.close(master)
    shown = b"".join(chunks).decode()
    assert p.returncode == EXIT_OK, shown
    torch = [f for f in shown.split("\r") if "relu [torch]" in f]
    inside = [f for f in torch if re.search(r" [1-9]\d*/3000 \[\d\d:\d\d<\d\d:\d\d, [\d.]+step/s\]", f)]
    assert inside, f"no frame with steps done, time left and rate inside the torch run: {torch}"
    assert shown.endswith("\r"), f"the bar is not cleared at the end: {shown[-200:]!r}"
    assert b"\r" not in out and b"\x1b" not in out and b"relu" in out, f"stdout (a pipe): {out!r}"


@pytest.mark.torch
@pytest.mark.jax
def test_torch_reports_progress_every_100_epochs_and_jax_once():
    problem = case_registry.get("sgd_two_relu").problem(epochs=125)   # twice: 250, a partial last 100
    per_epoch = problem.steps // problem.epochs
    calls = {fw: [] for fw in frameworks.FRAMEWORKS}
    for fw in frameworks.FRAMEWORKS:
        frameworks.train(fw, problem, progress=calls[fw].append)
    want = [min(e, problem.epochs) * per_epoch for e in range(100, problem.epochs + 100, 100)]
    assert calls["torch"] == want, f"torch progress {calls['torch']}, expected {want}"
    assert calls["jax"] == [problem.steps], f"jax progress {calls['jax']}, expected [{problem.steps}]"


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("cases", [["linear_nobias", "relu", "sgd_two_relu"]], ids=["3-cases"])
def test_deterministic_json_across_runs_and_thread_counts(cases):
    outs = [run_cli("run", *cases, "--json", "-", env={"OMP_NUM_THREADS": n}) for n in ("1", "2")]
    for r in outs:
        assert r.returncode == EXIT_OK, r.stderr
    assert outs[0].stdout == outs[1].stdout, "JSON differs between OMP_NUM_THREADS=1 and 2"
    relu = json.loads(outs[0].stdout)["cases"]["relu"]
    assert np.isfinite(relu["frameworks"]["jax"]["max_rel_err"]["loss"])


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("acts", ["relu,identity", "tanh,identity", "sigmoid,relu", "leakyrelu,tanh"])
def test_class_model_other_sizes_and_activations_agree(acts, capsys):
    code, report, _ = run_json(capsys, "relu_class", "--sizes", "2,3,1", "--activations", acts,
                               "--epochs", "300")
    case = report["cases"]["relu_class"]
    assert case["hyper"]["sizes"] == [2, 3, 1] and case["hyper"]["activations"] == acts.split(",")
    assert code == EXIT_OK, {fw: r["first_divergence"] for fw, r in case["frameworks"].items()}


@pytest.mark.torch
@pytest.mark.jax
def test_chaotic_class_run_is_judged_up_to_its_horizon(capsys):
    # sigmoid/relu at (2, 3, 1) amplifies rounding: a 1-ulp change of the initial values
    # alone exceeds the tolerance after ~100 steps; up to there, every framework agrees.
    code, report, _ = run_json(capsys, "relu_class", "--sizes", "2,3,1", "--activations", "sigmoid,relu",
                               "--epochs", "300")
    assert code == EXIT_OK
    for fw, r in report["cases"]["relu_class"]["frameworks"].items():
        assert r["horizon"] is not None and 50 < r["horizon"] < 300 and r["agree"], (fw, r["horizon"])


@pytest.mark.torch
@pytest.mark.jax
def test_document_runs_have_no_horizon(capsys):
    code, report, _ = run_json(capsys, "relu", "linear_nobias")
    assert all(r["horizon"] is None for c in report["cases"].values() for r in c["frameworks"].values())


@pytest.mark.torch
@pytest.mark.jax
def test_class_model_with_two_outputs_shows_the_mse_finding(capsys):
    # MSE.fp divides by m, MSE.f by m*o: with o = 2 every manual gradient is twice autograd's.
    code, report, _ = run_json(capsys, "relu_class", "--sizes", "1,2,2", "--epochs", "5")
    assert code == EXIT_MISMATCH
    for fw, r in report["cases"]["relu_class"]["frameworks"].items():
        first = r["first_divergence"]
        assert (first["step"], first["quantity"]) == (0, "grad"), (fw, first)
        assert first["expected"] == pytest.approx(2 * first["got"], rel=1e-12), (fw, first)
        # The two outputs first (as docs/explanation/documents.md reads it), then the generic 2.
        text = first["explanation"]["text"]
        said = [text.find(r) for r in ("the number of outputs", "a doubled factor 2")]
        assert -1 not in said and said[0] < said[1], (
            f"[relu_class/{fw}] step 0 grad[{first['parameter']}]: manual {first['expected']} vs autograd "
            f"{first['got']}, likely: {text!r}")


@pytest.mark.parametrize("argv", [["--sizes", "1,2"], ["--sizes", "0,1,1"], ["--activations", "relu,swish"],
                                  ["--activations", "relu"]],
                         ids=["sizes-2", "sizes-0", "act-unknown", "act-1"])
def test_class_model_options_reject_bad_values(argv, capsys):
    assert main(["run", "relu_class", *argv]) == EXIT_USAGE
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
