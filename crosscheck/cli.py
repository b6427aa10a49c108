"""The ``crosscheck`` command line.

Exit codes, one meaning each (documented in docs/reference/cli.md):

* 0: success; every check agrees (``diff``: nothing changed that fails a nightly).
* 1: a mismatch between implementations, a transcript that differs from the document,
  or a run that diverges (``diff``: a verdict or a transcript's status flipped, a kink
  convention changed, or an error grew past its budget).
* 2: a usage error: an unknown case, framework or option, a bad value, or an output path
  that cannot be written. One line on stderr, no traceback, nothing written.
* 3: an environment or internal error: a framework that cannot be imported or fails on
  first use (named with its installed version), or any unexpected exception. One line on
  stderr; the traceback only with ``--debug``.
* ``kinks`` exits 1 where a ReLU spelling's derivative at 0 differs from the installed
  version's expectation, or the models' own ReLU from the reference's (``crosscheck.judging.kinks``).
* 130 (SIGINT, Ctrl-C) or 143 (SIGTERM): interrupted. The helper process ends too, within
  a second or so; no traceback, no report written.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from crosscheck.declaring import cases
from crosscheck.declaring.model import ModelError, bad_epochs, bad_lr
from crosscheck.frameworks import FRAMEWORKS, FrameworkUnavailable
from crosscheck.reporting import outputs
from crosscheck.running import environment, interrupts, versions
from crosscheck.running.environment import BadEnvironmentVariable

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_ENV = 0, 1, 2, 3

#: Processes ``run`` uses without ``--jobs``: a helper process beside this one where there
#: are two cores. (The test suite's in-process runs use 1: its workers already fill the
#: cores, and a helper costs a second to start.)
DEFAULT_JOBS = min(2, os.cpu_count() or 1)

DESCRIPTION = """\
Cross-check hand-written NumPy backpropagation against PyTorch and JAX autograd, step by
step: every loss, gradient and parameter of every update, then a diagnosis of what each
training run really does. The cases are the programs of two teaching documents, or your
own models (a .py file that defines a crosscheck.Model)."""

EPILOG = """\
exit codes: 0 every check agrees, 1 a mismatch (implementations or transcript) or a
diverging run (diff: a flipped verdict, a changed kink convention or an error past its
budget), 2 a usage error, 3 an environment or internal error (--debug shows the
traceback), 130/143 interrupted.
Start with 'crosscheck list', then 'crosscheck run'."""


RUN_EPILOG = """\
examples:
  crosscheck run                                 every document case, both frameworks
  crosscheck run examples/planted_mistake.py     your models (exit 1: a wrong bias gradient)
  crosscheck run models/ -x                      every model file in a folder, up to the first failure
  crosscheck run relu --framework torch --lr 0.02 --json -
  crosscheck run --json report.json --plots plots --html index.html

the columns: local is the manual backward against autograd at the framework's own
parameters, every step; loss, grads and params are the trajectories against the reference;
envelope is what rounding alone may move them by (measured). All are normwise relative
errors, the worst over the steps compared ("-": no step compared). Under a failing row:
where it first fails, the likely mistake, and the command that walks the manual backward
at that step line by line (crosscheck explain CASE --step K).

exit codes: 0 every check agrees, 1 a mismatch, a run that compared nothing, a transcript
that differs from its document, or a diverging run, 2 a usage error (bad option, model or
output path; nothing written), 3 an environment or internal error (a framework that does
not import, a helper process that died, an output that cannot be written), 130/143
interrupted."""


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and exit 2 itself
        raise UsageError(message)


def _case(name: str) -> cases.Case:
    try:
        return cases.get(name)
    except cases.UnknownCase as e:
        raise UsageError(e.args[0]) from None


def _resolve(args: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """Case names, model files (``file.py`` or ``file.py:name``) and folders of them -> the
    case names, each once, in order, with every model of those files registered; the files;
    and for each folder, a line saying what its search found."""
    from crosscheck.declaring import model

    names, files, came_from, searched = [], [], {}, []
    expanded = []
    for arg in args:   # a folder: its model files, as pytest finds tests
        if not Path(arg).is_dir():
            expanded.append(arg)
            continue
        try:
            found, passed = model.discover(arg)
        except model.ModelError as e:
            raise UsageError(str(e)) from None
        expanded += found
        line = f"searched {arg}: {len(found)} file{'s' if len(found) != 1 else ''} with models"
        if passed:
            line += (f"; not imported, mentioning neither crosscheck nor Model or defining none: "
                     f"{', '.join(Path(p).name for p in passed)} (name one to check it)")
        searched.append(line)
    for arg in expanded:
        if model.is_model_file(arg):
            try:
                found = model.register_file(arg)
            except model.ModelError as e:
                raise UsageError(str(e)) from None
            path = str(Path(model.file_of(arg)).resolve())
            for name in found:
                if came_from.setdefault(name, path) != path:
                    raise UsageError(f"two models are named {name!r} ({came_from[name]} and {arg}); "
                                     "rename one")
            names += found
            files.append(arg)
        else:
            names.append(_case(arg).name)
    return list(dict.fromkeys(names)), files, searched


def cmd_list(args: argparse.Namespace) -> int:
    width = max(map(len, cases.CASES))
    for c in cases.CASES.values():
        print(f"{c.name:<{width}}  {c.document}  {c.summary}")
    return EXIT_OK


def cmd_transcript(args: argparse.Namespace) -> int:
    case = _case(args.case)
    if case.transcript is None:
        raise UsageError(f"{case.name} has no document, so no transcript")
    print(case.transcript(case.run_reference()))
    return EXIT_OK


def _validated(parse: Callable[[str], object],
               bad: Callable[[object], str | None]) -> Callable[[str], object]:
    """An option's type: ``text`` parsed, then judged by the validator the Python API
    uses (:mod:`crosscheck.declaring.model`), with its words."""
    def parsed(text: str) -> object:
        try:
            value = parse(text)
        except ValueError:
            value = text
        why = bad(value)
        if why:
            raise argparse.ArgumentTypeError(why)
        return value
    parsed.__name__ = parse.__name__
    return parsed


_lr = _validated(float, bad_lr)
_positive_int = _validated(int, bad_epochs)


class _Progress:
    """Progress on a terminal, one line (tqdm): which case and implementation runs, and
    inside a run its steps done, rate and time left. Nothing at all, not even a control
    code, when stderr is piped or redirected."""

    def __init__(self, cases: int) -> None:
        self.cases, self.done = cases, 0
        self.on, self.bar = sys.stderr.isatty(), None

    def __call__(self, what: str, steps: int | None = None) -> Callable[[int], None] | None:
        """A new phase ``what``, of ``steps`` steps if known; returns ``advance(steps_done)``."""
        if not self.on:
            return None
        desc = f"[{min(self.done + 1, self.cases)}/{self.cases}] {what}"
        total, bar_format = (steps, None) if steps else (float("inf"), "{desc} [{elapsed}]")
        if self.bar is None:
            # miniters=1: redraw on any update once 0.1 s have passed (tqdm's adaptive
            # default would learn from a run that jumps to its end, then stay silent).
            self.bar = _tqdm()(desc=desc, total=total, bar_format=bar_format, file=sys.stderr,
                               leave=False, unit="step", miniters=1, dynamic_ncols=True)
        else:
            self.bar.set_description_str(desc, refresh=False)
            self.bar.bar_format = bar_format
            self.bar.reset(total=total)
        return self._advance

    def _advance(self, done: int) -> None:
        self.bar.update(done - self.bar.n)

    def step(self) -> None:
        self.done += 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@functools.cache
def _tqdm() -> type:
    """tqdm, imported when first needed, without its extras: a monitor thread, and a
    multiprocessing lock (which would start multiprocessing's resource tracker process)."""
    from tqdm import tqdm

    class Bar(tqdm):
        monitor_interval = 0

    Bar.set_lock(threading.RLock())
    return Bar


def _overrides(args: argparse.Namespace, names: Sequence[str]) -> dict:
    """The per-run overrides; an option that only some cases declare (``--sizes``) needs
    every case named to take it."""
    overrides = {k: v for k, v in (("lr", args.lr), ("epochs", args.epochs)) if v is not None}
    for opt, takers in _case_options().items():
        value = getattr(args, opt, None)
        if value is not None:
            if not names or not set(names) <= set(takers):
                raise UsageError(f"--{opt} applies to {' and '.join(takers)} only: name "
                                 + ("that case alone" if len(takers) == 1 else "only those cases"))
            overrides[opt] = value
    return overrides


def _runnable(names: Sequence[str], overrides: dict) -> None:
    """Every user model named can be trained: it declares lr and epochs, or the options give them."""
    from crosscheck.declaring.model import ModelError, needs_run

    for name in names:
        case = cases.get(name)
        if case.document is None:
            try:
                needs_run(name, case.problem(**overrides).hyper)
            except ModelError as e:   # every message about a file's model starts with the file
                raise ModelError(f"{case.origin}: {e}" if case.origin else str(e)) from None


def _case_options() -> dict[str, list[str]]:
    """Every option some document case declares -> the cases that take it."""
    found: dict[str, list[str]] = {}
    for c in cases.CASES.values():
        for opt in c.options:
            found.setdefault(opt, []).append(c.name)
    return found


def cmd_explain(args: argparse.Namespace) -> int:
    from crosscheck.reporting import explain

    names, _, _ = _resolve([args.case])
    if len(names) > 1:
        raise UsageError(f"{args.case} defines {len(names)} models ({', '.join(names)}); explain one: "
                         f"{args.case}:{names[0]}")
    case = _case(names[0])
    overrides = _overrides(args, [case.name])
    _runnable([case.name], overrides)
    try:
        walk = explain.walk_case(case.name, args.step, **overrides)
    except explain.StepOutOfRun as e:
        raise UsageError(f"--step {args.step}: {e}") from None
    print(walk.text)
    return EXIT_OK if walk.agree else EXIT_MISMATCH


def cmd_kinks(args: argparse.Namespace) -> int:
    from crosscheck.judging import kinks
    from crosscheck.running.versions import installed

    frameworks = list(dict.fromkeys(args.framework or FRAMEWORKS))
    rows = kinks.table(frameworks)
    checks = kinks.models(frameworks)
    print("ReLU spellings, derivative at exactly 0, installed versions; the reference uses (x > 0).")
    case = kinks.kink_case()
    print(f"Kink case: {case.name} at its document's data from {dict(case.kink.init)},")
    print(f"{case.kink.note}.\n")
    print(f"{'framework':<9} {'spelling':<36} {'d/dx at 0':>9}  {'expected':>8}  {'= ref':<5}  "
          "kink case (max rel. error)")
    for r in rows:
        expected = "-" if r.expected is None else f"{r.expected:g}" + ("" if r.as_expected else " !")
        print(f"{r.framework:<9} {r.spelling:<36} {r.at_zero:>9g}  {expected:>8}  "
              f"{'yes' if r.agrees else 'NO':<5}  {r.kink_case_text}")
    recorded = [str(e) for fw in frameworks if (e := kinks.expectation(fw, installed(fw))) is not None]
    if recorded:
        print(f"expected: {', '.join(recorded)}")
    print("\nThe models' own forwards, one autograd step at each case's kink start, against its manual "
          "backward:")
    print(f"{'case':<14} {'framework':<9} {'exactly 0':<10} {'max rel. error':>14}  verdict")
    for c in checks:
        print(f"{c.case:<14} {c.framework:<9} {', '.join(c.zeros) or '-':<10} {c.error:>14.1e}  "
              f"{'agrees' if c.agrees else 'DIFFERS'}")
    found, notes = kinks.problems(rows, checks), kinks.notes(rows)
    print()
    for line in notes:
        print(f"note: {line}")
    for line in found:
        print(f"MISMATCH: {line}")
    checked = ", ".join(f"{fw} {installed(fw)}" for fw in frameworks)
    if not found:
        print(f"{checked}: every derivative as expected"
              + (" where an expectation exists" if notes else "")
              + "; the models' forwards keep the reference's derivative 0 at exactly 0.")
    return EXIT_MISMATCH if found else EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from crosscheck.reporting import diff

    try:
        changes = diff.diff_files(args.old, args.new)
    except diff.ReportError as e:
        raise UsageError(str(e)) from None
    if args.json:
        sys.stdout.write(json.dumps(changes.as_dict(), indent=2) + "\n")
    else:
        print(changes.text())
    return EXIT_MISMATCH if changes.fails else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:   # a folder of plots, gone on any exit
        json_out = sys.stdout
        if args.json == "-":   # the JSON alone on stdout, whatever a user's model prints
            json_out = stack.enter_context(_user_output_to_stderr())
        return _run(args, stack, json_out)


@contextlib.contextmanager
def _user_output_to_stderr() -> Iterator[TextIO]:
    """While the run goes on, what anyone prints to stdout goes to stderr (a user's
    debugging ``print`` in a backward, in this process or the helper, which inherits the
    file descriptor); yields a stream to the real stdout, for the JSON."""
    real = sys.stdout
    try:
        fd = real.fileno()
    except (AttributeError, OSError, ValueError):   # no descriptor (a StringIO in a test)
        with contextlib.redirect_stdout(sys.stderr):
            yield real
        return
    real.flush()
    saved = os.dup(fd)
    try:
        os.dup2(sys.stderr.fileno(), fd)
        with open(saved, "w", encoding="utf-8", closefd=False) as json_out:
            yield json_out
    finally:
        sys.stdout.flush()
        os.dup2(saved, fd)
        os.close(saved)


def _run(args: argparse.Namespace, stack: contextlib.ExitStack, json_out: TextIO) -> int:
    from crosscheck.reporting.plots import filenames

    names, files, searched = _resolve(args.cases) if args.cases else (list(cases.CASES), [], [])
    frameworks = list(dict.fromkeys(args.framework or FRAMEWORKS))
    overrides = _overrides(args, names)
    _runnable(names, overrides)
    named = {}
    try:
        if args.json not in (None, "-"):
            outputs.check("--json", args.json, "file")
            named["--json"] = [args.json]
        if args.plots is not None:
            outputs.check("--plots", args.plots, "dir", [f for n in names for f in filenames(n)])
            named["--plots"] = [Path(args.plots) / f for n in names for f in filenames(n)]
        if args.html is not None:
            outputs.check("--html", args.html, "file")
            named["--html"] = [args.html]
        outputs.distinct(named)
    except outputs.Unusable as e:
        raise UsageError(str(e)) from None
    # Plots are drawn aside and written with the other outputs once the verdicts are out.
    plot_dir = (Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crosscheck-plots-")))
                if args.plots or args.html else None)

    from crosscheck.reporting import report  # imports the frameworks lazily

    progress = _Progress(len(names))
    results, pictures, mine, drawn, stopped = [], [], [], [], ""
    try:
        from crosscheck.declaring.model import data_of

        users = [n for n in names if cases.get(n).document is None]
        jobs = args.jobs or environment.jobs() or DEFAULT_JOBS
        with report.Workers(jobs, files, data_of(users)) as workers:
            checked = report.check_cases(names, frameworks, args.dtype, workers=workers,
                                         progress=progress, **overrides)
            for i, r in enumerate(checked):
                results.append(r)
                progress.step()
                if plot_dir:   # half for the helper now, half for this process afterwards
                    from crosscheck.judging import transcript
                    from crosscheck.reporting import plots
                    job = (plots.write, r.trajs, transcript.printed_losses(r.case, r.reference),
                           plot_dir, r.diagnosis, report.error_series(r))
                    (mine.append(job) if i % 2 and workers.pool else
                     pictures.append(workers.submit(*job)))
                if args.exitfirst and not r.ok and len(results) < len(names):   # (its plots drawn)
                    stopped = (f"; stopped at the first failing case (-x), {len(results)} of "
                               f"{len(names)} checked")
                    break
            # The page's kink table: in the helper, behind its plots, while this process draws.
            kink_rows = workers.submit(_kink_rows, frameworks) if args.html else None
            for i, (fn, *job_args) in enumerate(mine):
                progress(f"plots {i + 1}/{len(mine)}")
                try:
                    drawn += fn(*job_args)
                except OSError as e:   # said after the verdicts, which it does not change
                    drawn.append(e)
            for picture in pictures:
                try:
                    drawn += picture.result()
                except report.HelperDied:
                    raise
                except OSError as e:
                    drawn.append(e)
            kink_rows = kink_rows.result() if kink_rows is not None else []
    finally:
        progress.close()

    table_out = sys.stderr if args.json == "-" else sys.stdout
    table = report.table(results, quiet=args.quiet)
    if table:
        print(table, file=table_out)
    table_out.flush()
    failed = next((e for e in drawn if isinstance(e, OSError)), None)
    if failed is not None:
        raise outputs.WriteFailed(failed.errno, failed.strerror or str(failed), failed.filename)
    files_out, wrote = outputs.Files(), []
    if args.json:
        text = json.dumps(report.to_json(results, args.dtype, kink_rows), indent=2, sort_keys=False) + "\n"
        if args.json == "-":
            json_out.write(text)
        else:
            files_out.text(args.json, text)
            wrote.append(f"JSON {args.json}")
    if args.plots:
        for picture in drawn:
            files_out.copy(picture, Path(args.plots) / picture.name)
        wrote.append(f"plots {args.plots}{os.sep} ({len(drawn)} PNGs)")
    if args.html:
        from crosscheck.reporting import html

        files_out.text(args.html, html.render(results, args.dtype, plot_dir, kink_rows))
        wrote.append(f"HTML {args.html}")
    files_out.write()
    for line in searched:   # also with -q: a folder's run says what it checked
        print(line, file=table_out)
    # Where a nightly log's reader looks: right above the summary, on the table's stream.
    if not args.quiet:
        print("\n" + versions.line(frameworks=frameworks), file=table_out)
    print(report.summary(results) + stopped + (f"; wrote {', '.join(wrote)}" if wrote else ""),
          file=table_out)
    return EXIT_OK if all(r.ok for r in results) else EXIT_MISMATCH


def _kink_rows(frameworks: Sequence[str]) -> list:
    """The kink table for the page, for the frameworks of the run."""
    from crosscheck.judging import kinks

    return kinks.table(frameworks)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="crosscheck", description=DESCRIPTION, epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true",
                   help="on an environment or internal error, show the full traceback")
    p.add_argument("--version", action="store_true",
                   help="print crosscheck's version and the versions it runs with, and exit")
    # --debug is accepted after the command too; SUPPRESS keeps a subcommand from resetting it.
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="on an environment or internal error, show the full traceback")
    sub = p.add_subparsers(dest="command", title="commands", metavar="COMMAND", parser_class=_Parser)
    parser = functools.partial(sub.add_parser, parents=[debug])
    parser("list", help="list the cases").set_defaults(func=cmd_list)
    t = parser("transcript", help="print a case's run in its document's format")
    t.add_argument("case", help="case name (see 'crosscheck list')")
    t.set_defaults(func=cmd_transcript)

    r = parser("run", help="run, cross-check and diagnose the cases (the main job)",
               description="Run each case in NumPy (the hand-written backward), torch and JAX, and "
                           "judge both questions: is the manual gradient right at every step (at "
                           "each framework's own parameters), and do the trajectories agree.",
               epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("cases", nargs="*", metavar="CASE|FILE.py[:NAME]|FOLDER",
                   help="document cases, files of your own crosscheck.Model definitions (all of a "
                        "file's models, or the one NAME), or folders searched for such files; "
                        "default: every document case")
    r.add_argument("-q", "--quiet", action="store_true",
                   help="print only the cases that fail and the summary line")
    r.add_argument("-x", "--exitfirst", action="store_true",
                   help="stop after the first case that fails")
    r.add_argument("--framework", action="append", choices=FRAMEWORKS,
                   help="framework to check against the reference (repeatable; default: both)")
    r.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="dtype of the framework runs; the reference is always float64")
    r.add_argument("--lr", type=_lr, help="override every case's learning rate")
    r.add_argument("--epochs", type=_positive_int, help="override every case's epochs")
    r.add_argument("--json", metavar="PATH|-", help="write the JSON report to PATH, or stdout with -")
    r.add_argument("--plots", metavar="DIR", help="write the errors, loss and parameter plots to DIR")
    r.add_argument("--html", metavar="PATH",
                   help="write the whole report as one self-contained HTML page (plots embedded)")
    _class_options(r)
    r.add_argument("--jobs", type=_positive_int,
                   help="processes to use (default: CROSSCHECK_JOBS, else 2, or 1 on a one-core machine; "
                        "1 runs all in this one)")
    r.set_defaults(func=cmd_run)

    e = parser("explain", help="the manual backward line by line beside autograd and "
                                       "finite differences")
    e.add_argument("case", metavar="CASE|FILE.py[:NAME]",
                   help="a document case (see 'crosscheck list') or one of your models")
    e.add_argument("--step", type=int, default=0, help="update step to explain (default 0)")
    e.add_argument("--lr", type=_lr, help="override the learning rate")
    e.add_argument("--epochs", type=_positive_int, help="override the epochs")
    _class_options(e)
    e.set_defaults(func=cmd_explain)

    k = parser("kinks", help="each ReLU spelling's derivative at exactly 0, against the installed "
                             "versions' expectations, and the models' own forwards at exact zeros")
    k.add_argument("--framework", action="append", choices=FRAMEWORKS,
                   help="framework to measure (repeatable; default: both)")
    k.set_defaults(func=cmd_kinks)

    d = parser("diff", help="what changed between two JSON reports of 'crosscheck run' (the nightly's view)")
    d.add_argument("old", metavar="OLD.json", help="the earlier report (crosscheck run --json)")
    d.add_argument("new", metavar="NEW.json", help="the later report")
    d.add_argument("--json", action="store_true", help="print the changes as JSON on stdout")
    d.set_defaults(func=cmd_diff)
    return p


def _class_options(p: argparse.ArgumentParser) -> None:
    """The options some cases declare (``--sizes``), each naming the cases that take it."""
    for opt, takers in _case_options().items():
        option = next(c.options[opt] for c in cases.CASES.values() if opt in c.options)
        p.add_argument(f"--{opt}", type=_option_type(opt, option.parse), metavar=option.metavar,
                       help=f"{', '.join(takers)} only: {option.help}")


def _option_type(opt: str, parse: Callable[[str], object]) -> Callable[[str], object]:
    def parsed(text: str) -> object:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parsed.__name__ = opt
    return parsed


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, as KeyboardInterrupt is: no ``except
    Exception`` swallows it, and every ``finally`` and ``with`` on the way out runs (the
    helper process is ended in ``report.Workers.__exit__``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _OnSignals:
    """While active, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread.

    Python runs a signal handler only between bytecodes: should the main thread be inside
    one long compiled call (a JAX run with ``--jobs 1``), or a cleanup that hangs, a
    watchdog thread ends the process ``GRACE_S`` after the signal, killing the helper
    first. A second signal while the first unwinds is not raised again. Where the handler
    must not raise (:mod:`crosscheck.running.interrupts`: a framework's import, the helper's start),
    the exception waits for the block's end, and a block still running ``HOLD_S`` after the
    signal is not waited for: the watchdog ends the process then, the helper first.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    GRACE_S = 1.0
    #: How long a block the handler must not raise in (:func:`crosscheck.running.interrupts.hold`)
    #: is waited for: starting the helper takes milliseconds, a framework's import seconds.
    HOLD_S = 0.25

    def __enter__(self) -> _OnSignals:
        self.active = threading.current_thread() is threading.main_thread()
        if not self.active:
            return self
        self._entering = contextlib.ExitStack()   # a signal before arm() is raised by arm()
        self._entering.enter_context(interrupts.hold())
        self.fired = False
        self.finished = threading.Event()
        self._ending = threading.Lock()
        self._read, self._write = socket.socketpair()
        self._write.setblocking(False)
        self._old_handlers = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        self._old_wakeup = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        self._watchdog = threading.Thread(target=self._watch, name="crosscheck-signals", daemon=True)
        self._watchdog.start()
        return self

    def _handler(self, signum: int, frame: object) -> None:
        if not self.fired:
            self.fired = True
            if interrupts.holding():   # an import, the helper's start: raised at the end
                interrupts.keep(Interrupted(signum))
                return
            raise Interrupted(signum)

    def _watch(self) -> None:
        while True:
            try:
                data = self._read.recv(1)
            except OSError:
                return
            if not data:          # __exit__ closed the other end
                return
            if data[0] in self.SIGNALS:
                break
        deadline = time.monotonic() + self.HOLD_S
        while interrupts.holding() and time.monotonic() < deadline and not self.finished.is_set():
            time.sleep(0.005)
        held = interrupts.holding()   # still inside an import: end now, without unwinding
        if not held and self.finished.wait(self.GRACE_S):
            return
        if not self.claim():          # the main thread has unwound, and says so itself
            return
        try:   # the helper and the spilled records, as unwinding would, for at most GRACE_S
            ending = threading.Thread(target=interrupts.abandon, name="crosscheck-abandon", daemon=True)
            ending.start()
            ending.join(self.GRACE_S)
            for child in multiprocessing.active_children():
                child.kill()
            name = signal.Signals(data[0]).name
            why = "" if held else "; stopped inside a long call"
            os.write(2, f"crosscheck: interrupted ({name}){why}\n".encode())
        finally:
            os._exit(128 + data[0])

    def arm(self) -> None:
        """From now on a signal raises at once; one that came while entering, here (the
        first statement of the caller's ``try``, where :class:`Interrupted` is handled)."""
        if self.active:
            self._entering.close()

    def claim(self) -> bool:
        """Whether this thread is the one to end the run and say so: the main thread once
        it has unwound, or the watchdog ending the process first (once, never both)."""
        return not self.active or self._ending.acquire(blocking=False)

    def __exit__(self, *exc: object) -> None:
        if not self.active:
            return
        self.fired = True   # the command has ended: a signal now changes nothing
        with contextlib.suppress(Interrupted):
            self._entering.close()
        self.finished.set()
        signal.set_wakeup_fd(self._old_wakeup)
        for s, handler in self._old_handlers.items():
            signal.signal(s, handler)
        self._write.close()
        self._watchdog.join()
        self._read.close()


def _one_line(e: BaseException) -> str:
    if isinstance(e, (FrameworkUnavailable, outputs.WriteFailed)):
        text = str(e)
    elif isinstance(e, OSError):
        text = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
    else:
        text = f"internal error: {type(e).__name__}: {e}"
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    debug, args = False, None
    with _OnSignals() as signals:
        try:
            signals.arm()
            args = parser.parse_args(argv)
            debug = args.debug
            if args.version:
                from crosscheck import __version__

                print(f"crosscheck {__version__}\n{versions.line()}")
                return EXIT_OK
            if args.command is None:   # plain `crosscheck`: a usage error, with the help
                parser.print_help(sys.stderr)
                return EXIT_USAGE
            return args.func(args)
        except (UsageError, ModelError, BadEnvironmentVariable) as e:   # so is a model that cannot be checked
            print(f"crosscheck: error: {' '.join(str(e).split())}", file=sys.stderr)
            return EXIT_USAGE
        except BrokenPipeError:   # the reader went away (``| head``): end quietly, as SIGPIPE would
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 128 + signal.SIGPIPE
        except Interrupted as e:
            if not signals.claim():   # the watchdog is ending the process, and says so
                threading.Event().wait()
            print(f"crosscheck: interrupted ({signal.Signals(e.signum).name})", file=sys.stderr)
            return 128 + e.signum
        except Exception as e:
            if debug:
                traceback.print_exc()
            hints = [] if debug or isinstance(e, outputs.WriteFailed) else ["--debug shows the traceback"]
            if isinstance(e, FrameworkUnavailable) and hasattr(args, "framework"):
                others = [f for f in FRAMEWORKS if f != e.framework]
                hints[:0] = [f"--framework {others[0]} checks without it"] if others else []
            hint = f" ({'; '.join(hints)})" if hints else ""
            print(f"crosscheck: error: {_one_line(e)}{hint}", file=sys.stderr)
            return EXIT_ENV


if __name__ == "__main__":
    sys.exit(main())
