"""``rvnpu fuzz``: random programs on the RTL against the golden models, for a while.

``rvnpu fuzz core`` runs random instruction streams on the core against the ISS, ``rvnpu fuzz
engine`` random command programs on the engine against its golden model, ``rvnpu fuzz soc``
random firmware issuing engine commands on the whole SoC against the ISS driving the golden
engine (:mod:`rvnpu.sim.fuzz`). Each prints a line for every failing case with the command
that reproduces it alone, and a summary; the exit status is 1 if any case failed.
"""

import os
import shlex
import sys
import time

from rvnpu.cli.options import (add_engine_options, add_simulator_option, engine_config,
                               engine_options_given)
from rvnpu.spec.config import ConfigError


HELP = "random programs on the RTL against the golden models, for a while"
DESCRIPTION = (
    "Run random programs on the RTL and compare them with the golden models until --seconds "
    "have passed: `core` runs instruction streams (with traps, interrupts and WFI) on the "
    "core against the ISS, instruction by instruction; `engine` runs command programs (with "
    "refused commands) on the engine against its golden model, comparing the whole memory and "
    "every status answer, and reports a program that exceeds its cycle budget as a hang; `soc` "
    "runs firmware on the whole SoC (the core issuing engine commands, with interrupts from the "
    "engine and the timer) against the ISS driving the golden engine, instruction by "
    "instruction and then the whole RAM. "
    "Case S, S+1, ... each follow from their seed alone; a failure prints the command that "
    "reruns it. Exit status 1 if any case failed.")

#: Seconds between progress lines on stderr.
PROGRESS_EVERY_S = 60


def add_arguments(parser):
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    core = targets.add_parser("core", help="the core's RTL against the ISS, in lockstep")
    _common(core)
    engine = targets.add_parser("engine", help="the engine's RTL against its golden model")
    _common(engine)
    from rvnpu.sim.fuzz import FUZZ_ENGINE
    add_engine_options(engine, title="engine parameters (default: the fuzz configuration, "
                                     + ", ".join(f"{k}={v}" for k, v in FUZZ_ENGINE.items())
                                     + ")", show_defaults=False)
    add_simulator_option(engine)
    soc = targets.add_parser("soc", help="the whole SoC against the ISS and the golden engine")
    _common(soc)


def _common(parser):
    parser.add_argument("--seconds", type=float, default=60,
                        help="start no new case after this many seconds (default: 60)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the first case (default: a random one, printed)")
    parser.add_argument("--cases", type=int, default=None,
                        help="stop after this many cases (default: as many as time allows)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes running cases side by side (default: 1)")


def reproduce_command(args, seed):
    """The command line that reruns case ``seed`` alone."""
    words = ["rvnpu", "fuzz", args.target, "--seed", str(seed), "--cases", "1"]
    if args.target == "engine":
        for name, value in engine_options_given(args).items():
            words += ["--" + name.replace("_", "-"), str(value)]
        if args.simulator != "verilator":
            words += ["--simulator", args.simulator]
    return shlex.join(words)


def run(args):
    from rvnpu.sim.fuzz import FUZZ_ENGINE, run_campaign

    if args.seconds <= 0:
        raise ConfigError(f"--seconds must be positive, not {args.seconds:g}")
    if args.cases is not None and args.cases < 1:
        raise ConfigError(f"--cases must be at least 1, not {args.cases}")
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {args.jobs}")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(3), "little")
    if seed < 0:
        raise ConfigError(f"--seed must not be negative, not {seed}")
    config = engine_config(args, **FUZZ_ENGINE) if args.target == "engine" else None
    if args.target == "core":
        what = "the core against the ISS"
    elif args.target == "soc":
        what = "the SoC against the ISS and the golden engine (Amaranth's simulator)"
    else:
        what = f"a {config.rows}x{config.cols} engine against its golden model ({args.simulator})"
    limit = f"{args.seconds:g} s" + (f" or {args.cases} cases" if args.cases else "")
    print(f"rvnpu fuzz {args.target}: {what}, cases from seed {seed}, {limit}, "
          f"{args.jobs} job{'s' if args.jobs > 1 else ''}", flush=True)

    start = last = time.perf_counter()
    counts = {"cases": 0, "checked": 0, "failures": 0}

    def on_case(case_seed, checked, failure):
        nonlocal last
        counts["cases"] += 1
        counts["checked"] += checked
        if failure is not None:
            counts["failures"] += 1
            print(f"FAIL seed {case_seed} ({failure.kind}): {failure.message}")
            print(f"  reproduce: {reproduce_command(args, case_seed)}", flush=True)
        now = time.perf_counter()
        if now - last >= PROGRESS_EVERY_S:
            last = now
            print(f"  {now - start:.0f} s: {counts['cases']} programs, {counts['checked']} "
                  f"{'commands' if args.target == 'engine' else 'instructions'}, "
                  f"{counts['failures']} failing", file=sys.stderr, flush=True)

    report = run_campaign(args.target, seconds=args.seconds, seed=seed, cases=args.cases,
                          jobs=args.jobs, config=config,
                          simulator=getattr(args, "simulator", "verilator"), on_case=on_case)
    print(format_summary(report))
    for failure in report.failures:
        print(f"  reproduce: {reproduce_command(args, failure.seed)}")
    return 1 if report.failures else 0


def format_summary(report):
    """The closing line: what ran, how fast, and what failed."""
    last = report.first_seed + report.cases - 1
    seeds = f"seeds {report.first_seed}..{last}" if report.cases > 1 else \
        f"seed {report.first_seed}" if report.cases else "no case"
    engine = f", {report.engine_commands} engine commands" if report.target == "soc" else ""
    return (f"{report.target}: {report.cases} programs, {report.checked} {report.unit}{engine} "
            f"checked "
            f"in {report.elapsed_s:.1f} s on {report.jobs} job{'s' if report.jobs > 1 else ''} "
            f"({report.checked_per_second:.0f} {report.unit}/s, "
            f"{report.cases_per_second:.2f} programs/s, {report.cpu_s:.0f} s of CPU; {seeds}): "
            f"{report.count('mismatch')} mismatches, {report.count('hang')} hangs")
