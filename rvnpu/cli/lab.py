"""``rvnpu lab``: the course labs. ``list`` them, ``start N DIR`` a student's working copy,
``check DIR`` grade one (optionally into Gradescope's ``results.json``)."""

import json
import sys
from pathlib import Path


HELP = "course labs: list them, start a working copy, grade it"
DESCRIPTION = ("Hardware course labs on rvnpu's own sources. `rvnpu lab start 1 pe` writes "
               "lab 1's starter into ./pe; `rvnpu lab check pe` runs its autograder.")


def add_arguments(parser):
    sub = parser.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="the labs, their expected time and what they cover")
    start = sub.add_parser("start", help="write a lab's working copy, with its holes")
    start.add_argument("number", metavar="N", help="the lab's number")
    start.add_argument("folder", metavar="DIR", type=Path, help="a new or empty folder")
    start.add_argument("--seed", type=int, help="the seed of the copy's random test cases")
    start.add_argument("--reference", action="store_true",
                       help="write the reference solution instead of the holes (instructors)")
    check = sub.add_parser("check", help="run a lab copy's autograder and print the score")
    check.add_argument("folder", metavar="DIR", type=Path, help="the lab copy")
    check.add_argument("--seed", type=int,
                       help="grade with this seed instead of the copy's (instructors)")
    check.add_argument("--timeout", type=float, help="seconds before the run is stopped")
    check.add_argument("--gradescope", metavar="FILE", type=Path,
                       help="also write the results as Gradescope's results.json")


def run(args):
    from rvnpu.labs.catalog import LabError
    try:
        return _ACTIONS[args.lab_command](args)
    except LabError as error:
        print(f"rvnpu: error: {error}", file=sys.stderr)
        return 2


def _list(args):
    from rvnpu.labs.catalog import labs
    for lab in labs().values():
        print(f"{lab.number:2}  {lab.name:22}  {lab.title}  (~{lab.minutes} min)")
    return 0


def _start(args):
    from rvnpu.labs.workspace import start_lab
    lab = start_lab(args.number, args.folder, seed=args.seed,
                    cut=(lambda hole: False) if args.reference else None)
    print(f"lab {lab.number} ({lab.title}) is in {args.folder}: read README.md there, edit "
          f"{', '.join((*lab.files, *lab.lab_files))}, then run `rvnpu lab check {args.folder}`")
    return 0


def _check(args):
    from rvnpu.labs.grading import check_lab, format_report, gradescope_results
    report = check_lab(args.folder, seed=args.seed, timeout=args.timeout)
    print(format_report(report))
    if args.gradescope:
        args.gradescope.write_text(json.dumps(gradescope_results(report), indent=2) + "\n")
    return 0 if report.full else 1


_ACTIONS = {"list": _list, "start": _start, "check": _check}
