"""``rvnpu mutate``: plant small faults in the RTL and count how many the tests catch."""

import json
from pathlib import Path

from rvnpu.spec.config import ConfigError


HELP = "mutation score: plant faults in the RTL, run the tests that cover it, print a table"
DESCRIPTION = (
    "For each block, draw mutants of its RTL source from --seed (operators swapped, "
    "comparisons off by one, constants changed, enables and assignments dropped), run the "
    "block's Amaranth-simulator and golden-model tests against each in a child process (the "
    "checkout is never changed) and report killed, survived, timed out and invalid (does not "
    "elaborate) mutants, and the score. See docs/mutation.md.")


def add_arguments(parser):
    from rvnpu.sim.mutation import BLOCKS
    parser.add_argument("--blocks", default=",".join(BLOCKS), metavar="NAMES",
                        help="comma-separated blocks, each optionally NAME:N for its own "
                             "--max-mutants (default: all: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="mutant sampling seed (default: 1)")
    parser.add_argument("--max-mutants", type=int, default=10, metavar="N",
                        help="mutants per block at most (default: 10)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="mutants tested side by side (default: 1)")
    parser.add_argument("--timeout-factor", type=float, default=4.0, metavar="F",
                        help="a mutant times out after F times its block's unmutated test time "
                             "(at least 60 s; default: 4)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="write the full report (every mutant and its outcome) here")
    parser.add_argument("--only", default=None, metavar="IDS",
                        help="comma-separated mutant ids (as printed, e.g. "
                             "frontend:554:40:operator:...) to replay instead of sampling")
    parser.add_argument("--tests", default=None, metavar="TESTS",
                        help="comma-separated pytest ids relative to tests/ to run instead of "
                             "each block's own selection (e.g. to show one new test catches "
                             "a survivor)")
    parser.add_argument("--list", action="store_true",
                        help="only print the mutants that would be run")


def run(args):
    from rvnpu.sim.mutation import (MutationError, format_table, generate, mutants_of,
                                    run_campaign)

    limits = {}
    for word in (w.strip() for w in args.blocks.split(",") if w.strip()):
        name, _, count = word.partition(":")
        try:
            limits[name] = int(count) if count else args.max_mutants
        except ValueError:
            raise ConfigError(f"--blocks: {word!r} is not NAME or NAME:N") from None
    blocks = list(limits)
    try:
        only = None if args.only is None else _mutant_ids(args.only, blocks)
        if args.list:
            for block in blocks:
                chosen = generate(block, seed=args.seed, max_mutants=limits[block]) \
                    if only is None else [m for m in mutants_of(block) if m.ident in only]
                for mutant in chosen:
                    print(f"{block:9} {mutant.ident}   {mutant.before!r} -> {mutant.after!r}")
            return 0
        if args.json is not None and args.json.is_dir():
            raise MutationError(f"--json {args.json} is a directory")

        def write(report):
            if args.json is not None:
                args.json.write_text(json.dumps(report, indent=1) + "\n")

        def on_outcome(outcome):
            m = outcome.mutant
            print(f"{m.block:9} {outcome.status:8} {outcome.seconds:6.1f} s  {m.ident}", flush=True)

        report = run_campaign(blocks, seed=args.seed, max_mutants=limits,
                              jobs=args.jobs, timeout_factor=args.timeout_factor,
                              on_outcome=on_outcome, on_block=write, only=only,
                              tests=None if args.tests is None else
                              [t.strip() for t in args.tests.split(",") if t.strip()])
    except MutationError as error:
        raise ConfigError(str(error)) from None
    print(format_table(report["summary"]))
    for name, why in report.get("skipped", {}).items():
        print(f"skipped {name}: {why}")
    for row in report["mutants"]:
        if row["status"] in ("survived", "error"):
            print(f"{row['status']}: {row['id']}  {row['before']!r} -> {row['after']!r}")
    if args.json is not None:
        write(report)
        print(f"report: {args.json}")
    return 0


def _mutant_ids(text, blocks):
    """The ids in ``--only``, each checked against the mutants of ``blocks``."""
    from rvnpu.sim.mutation import MutationError, mutants_of
    # An id holds commas only inside its replacement text: split where a new id starts.
    known = {m.ident for b in blocks for m in mutants_of(b)}
    ids, rest = set(), text
    while rest:
        match = max((i for i in known if rest.startswith(i)), key=len, default=None)
        if match is None:
            raise MutationError(f"--only: no mutant of {', '.join(blocks)} starts "
                                f"{rest[:60]!r}; see --list")
        ids.add(match)
        rest = rest[len(match):].lstrip(",")
    return ids
