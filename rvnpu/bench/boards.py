"""``python -m rvnpu.bench.boards``: what each built board achieves on the demo's GEMM.

A board's build report (``build/boards/<board>/report.json``) gives each clock domain's Fmax
and the peak throughput, ``2 x rows x cols`` operations an engine cycle at the engine's Fmax.
What the board delivers is less: the demo (``firmware/examples/board_demo.c``) times its
benchmark GEMM (``BENCH`` cubed MACs, requantised stores and the core's command issue
included) with the TIMER, in core cycles. This bench runs the demo on the board's design, as
built (its array, its clocks at their targets), in Verilator, checks its self-test passes,
and turns the cycles into achieved throughput at the engine's Fmax:

* engine cycles = core cycles x engine clock / core clock (both targets, as simulated);
* achieved GOPS = 2 x MACs x engine Fmax / engine cycles.

With one clock the two clocks are the same and this is the GEMM's MACs a cycle times the
Fmax. With two it assumes the ratio of the clocks stays as built, so the core's share of the
time (command issue) scales with the engine's.

Each board's figures go to ``demo.json`` beside its report, which ``rvnpu build --doc`` reads
into the table of ``docs/boards.md``, and to ``build/bench/boards.json``, where the figures
of boards not measured this time stay.
"""

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path

from rvnpu.boards.flow import DEFAULT_OUTPUT, DEMO_FIRMWARE
from rvnpu.gen.files import write_file


__all__ = ["DemoGemm", "BenchBoardsError", "parse_demo_output", "achieved_gops", "demo_config",
           "measure_demo", "plot_boards", "main", "DEMO_JSON"]

#: The demo's figures, beside a board's ``report.json``.
DEMO_JSON = "demo.json"

#: Core cycles the demo may take to print its benchmark (the iCEBreaker's, which requantises
#: in software, takes the longest).
MAX_CYCLES = 30_000_000

_GEMM = re.compile(r"gemm (\d+)x(\d+)x(\d+) int\d+ on a (\d+)x(\d+) array: (\d+) cycles")
_REPLAY = re.compile(r"^ok   replayed from a list of \d+ commands: (\d+) cycles", re.M)


class BenchBoardsError(Exception):
    """The demo failed or printed no benchmark; the message says what it printed."""


@dataclasses.dataclass(frozen=True)
class DemoGemm:
    """The demo's benchmark GEMM as measured: ``m x n x k`` on a ``rows x cols`` array in
    ``cycles`` core cycles, and in ``replayed_cycles`` replayed from a recorded command list
    (``None`` where the demo could not record it: an engine that leaves requantisation to
    the core)."""

    m: int
    n: int
    k: int
    rows: int
    cols: int
    cycles: int
    replayed_cycles: int | None = None

    @property
    def macs(self):
        return self.m * self.n * self.k


def parse_demo_output(text):
    """The benchmark line of the demo's UART output as a :class:`DemoGemm`; a
    :class:`BenchBoardsError` if the self-test did not pass or there is no such line."""
    if "self-test: PASS" not in text or "FAIL" in text:
        raise BenchBoardsError("the board demo's self-test did not pass: "
                               + " | ".join(text.strip().splitlines()[-4:]))
    match = _GEMM.search(text)
    if match is None:
        raise BenchBoardsError("the board demo printed no benchmark line")
    replay = _REPLAY.search(text)
    return DemoGemm(*(int(g) for g in match.groups()),
                    replayed_cycles=int(replay.group(1)) if replay else None)


def achieved_gops(demo, report):
    """Achieved throughput of ``demo`` (a :class:`DemoGemm`) on the design of ``report`` (a
    build report), at the engine's Fmax; ``None`` without an Fmax. A dictionary: the engine
    cycles, the MACs an engine cycle, and GOPS achieved and peak."""
    core_mhz = report["target_mhz"]
    engine_mhz = report.get("engine_target_mhz") or core_mhz
    fmax = report.get("engine_fmax_mhz", report.get("fmax_mhz"))

    def figures(cycles):
        engine_cycles = cycles * engine_mhz / core_mhz
        per_cycle = demo.macs / engine_cycles
        # Four significant digits: a board without an array to speak of achieves 1e-4.
        gops = None if fmax is None else float(f"{2 * per_cycle * fmax / 1e3:.4g}")
        return round(engine_cycles), per_cycle, gops

    engine_cycles, per_cycle, gops = figures(demo.cycles)
    result = {
        "gemm": f"{demo.m}x{demo.n}x{demo.k}", "macs": demo.macs, "core_cycles": demo.cycles,
        "engine_cycles": engine_cycles, "macs_per_engine_cycle": round(per_cycle, 3),
        "utilisation": round(per_cycle / (demo.rows * demo.cols), 4),
        "achieved_gops_at_fmax": gops,
        "peak_gops_at_fmax": report.get("peak_gops_at_fmax"),
    }
    if demo.replayed_cycles is not None:
        engine_cycles, per_cycle, gops = figures(demo.replayed_cycles)
        result.update({"replayed_core_cycles": demo.replayed_cycles,
                       "replayed_engine_cycles": engine_cycles,
                       "replayed_utilisation": round(per_cycle / (demo.rows * demo.cols), 4),
                       "replayed_gops_at_fmax": gops})
    return result


def demo_config(board, report):
    """The SoC ``report`` was built from, as the simulator runs it
    (:meth:`~rvnpu.boards.Board.simulated_config`): its engine, clocks and core (the board's
    core, for a report written before the core's options were recorded)."""
    from rvnpu.spec.config import EngineConfig
    engine = EngineConfig(**report["engine"])
    board = dataclasses.replace(board, **report.get("core", {}))
    clock_hz = round(report["target_mhz"] * 1e6)
    engine_clock_hz = (round(report["engine_target_mhz"] * 1e6) if report.get("split_clocks")
                       else 0)
    return board.simulated_config(engine, clock_hz, engine_clock_hz)


def measure_demo(board, report, work_dir, *, max_cycles=MAX_CYCLES):
    """Run the demo on ``report``'s design in Verilator; returns its :class:`DemoGemm`, and
    leaves what the demo printed in ``work_dir/uart.txt``."""
    from rvnpu.firmware.build import EXAMPLES, build_firmware
    from rvnpu.sim.soc_sim import SocSimulator
    config = demo_config(board, report)
    image = build_firmware([EXAMPLES[DEMO_FIRMWARE]], Path(work_dir) / "firmware", config)
    result = SocSimulator(config).run(image, max_cycles=max_cycles)
    # What the demo printed, as a user with the board would see it.
    write_file(Path(work_dir) / "uart.txt", result.text)
    return parse_demo_output(result.text)


def main(argv=None):
    from rvnpu.boards import BOARDS, board as find_board
    parser = argparse.ArgumentParser(prog="python -m rvnpu.bench.boards",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--board", nargs="+", default=None, metavar="BOARD",
                        help="boards to measure (default: every board with a build report)")
    parser.add_argument("--root", type=Path, default=DEFAULT_OUTPUT,
                        help=f"where the builds are (default: {DEFAULT_OUTPUT})")
    parser.add_argument("-o", "--output", type=Path, default=Path("build/bench/boards.json"))
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG",
                        help="also draw every board's peak and achieved GOPS in the summary")
    args = parser.parse_args(argv)
    names = args.board or [n for n in BOARDS if (args.root / n / "report.json").is_file()]
    results = {}
    for name in names:
        b = find_board(name)
        directory = args.root / name
        try:
            report = json.loads((directory / "report.json").read_text())
        except OSError:
            parser.exit(2, f"{name}: no build report in {directory}; run rvnpu build first\n")
        print(f"{name}: simulating the demo ...", file=sys.stderr, flush=True)
        try:
            demo = measure_demo(b, report, directory / "bench")
        except BenchBoardsError as error:
            parser.exit(1, f"{name}: {error}\n")
        results[name] = achieved_gops(demo, report)
        write_file(directory / DEMO_JSON, json.dumps(results[name], indent=2) + "\n")
        r = results[name]
        print(f"{name}: {r['gemm']} in {r['core_cycles']:,} core cycles, "
              f"{r['macs_per_engine_cycle']} MACs an engine cycle: "
              f"{r['achieved_gops_at_fmax']} GOPS achieved, {r['peak_gops_at_fmax']} peak"
              + (f"; replayed from a recorded list {r['replayed_core_cycles']:,} core cycles, "
                 f"{r['replayed_gops_at_fmax']} GOPS" if "replayed_core_cycles" in r else ""))
    # Measuring some boards keeps the others' figures in the summary.
    summary = {**_previous(args.output), **results}
    write_file(args.output, json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.output}")
    if args.plot is not None:
        try:
            print(f"wrote {plot_boards(summary, args.plot)}")
        except BenchBoardsError as error:
            parser.exit(1, f"{error}\n")
    return 0


#: The bars of :func:`plot_boards`: a board's summary key, and its label.
_BARS = (("peak_gops_at_fmax", "peak"), ("replayed_gops_at_fmax", "replayed list"),
         ("achieved_gops_at_fmax", "issued by the core"))


def plot_boards(summary, path):
    """A PNG of each board's peak GOPS beside what the demo's GEMM achieves, issued by the
    core and replayed from a recorded list, on a log scale (the boards span four decades).
    ``summary``: the bench's summary (board name to :func:`achieved_gops`)."""
    import io
    try:
        from matplotlib.figure import Figure    # drawn without pyplot: no display, no state
    except ImportError:
        raise BenchBoardsError("the plot needs matplotlib: pip install 'rvnpu[bench]'") \
            from None
    names = [n for n, r in sorted(summary.items())
             if isinstance(r, dict) and r.get("achieved_gops_at_fmax")]
    if not names:
        raise BenchBoardsError("no board in the summary has achieved GOPS to plot")
    fig = Figure(figsize=(7.5, 4.5), dpi=110)
    ax = fig.add_subplot()
    width = 0.8 / len(_BARS)
    for i, (key, label) in enumerate(_BARS):
        shown = [(j + (i - 1) * width, summary[n][key]) for j, n in enumerate(names)
                 if summary[n].get(key)]
        xs, ys = zip(*shown) if shown else ((), ())
        bars = ax.bar(xs, ys, width, label=label)
        ax.bar_label(bars, labels=[f"{y:.2g}" for y in ys], fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), [f"{n}\n{summary[n]['gemm']}" for n in names],
                  fontsize=8)
    ax.set_ylabel("GOPS at the engine's Fmax")
    ax.set_title("python -m rvnpu.bench.boards: the demo's GEMM on each board's design",
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return write_file(path, buffer.getvalue())


def _previous(path):
    """The boards' figures already in ``path`` (none if it is missing or not such a file)."""
    try:
        previous = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return previous if isinstance(previous, dict) else {}


if __name__ == "__main__":
    sys.exit(main())
