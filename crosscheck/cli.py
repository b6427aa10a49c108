"""The ``crosscheck`` command line.

Exit codes (documented in the README):

* 0: success; every check agrees.
* 1: a mismatch between implementations, a transcript that differs from the document,
  or a run that diverges.
* 2: a usage error: an unknown case, framework or option, or a bad value. One line on
  stderr, no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from crosscheck import cases

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


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


def cmd_list(args: argparse.Namespace) -> int:
    width = max(map(len, cases.CASES))
    for c in cases.CASES.values():
        print(f"{c.name:<{width}}  {c.document}  {c.summary}")
    return EXIT_OK


def cmd_transcript(args: argparse.Namespace) -> int:
    case = _case(args.case)
    print(case.transcript(case.run_reference()))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="crosscheck", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the cases").set_defaults(func=cmd_list)
    t = sub.add_parser("transcript", help="print a case's run in its document's format")
    t.add_argument("case", help="case name (see 'crosscheck list')")
    t.set_defaults(func=cmd_transcript)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UsageError as e:
        print(f"crosscheck: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
