"""Runs one firmware image on the whole SoC and records what it did.

The simulator runs free: the clock is made in Verilog (``rvnpu.sim.soc_sim``'s wrapper around
the SoC, whose instance is ``dut.soc``, and which passes the inputs on a cycle late), the exit
is one trigger on the rising edge of ``sim_exit_valid`` (raced against a cycle limit), and the
UART monitor wakes only on a falling edge of ``tx`` and then once a bit to sample it. Nothing in
Python runs a cycle.

Arguments (``test_args``): ``image`` (path of the RAM image, loaded from address 0 while the SoC
is held in reset), ``results_file``, ``max_cycles``, ``uart_divisor`` (clock cycles a bit),
``ram_word_bytes``, and optionally ``uart_input`` (hex of bytes sent to the SoC's rx once it
runs) and ``buttons``.

At the end it also reads where the core was (its ``pc``) and the engine's status word (what a
STATUS command would answer), which say where a firmware that never exits is stuck; the SoC
simulator's Verilator control file makes just these two signals readable.
"""

import json
import time
from pathlib import Path

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, Timer, with_timeout

from rvnpu.sim.runner import test_args

#: The wrapper's clock period.
PERIOD_PS = 10_000


async def _uart_monitor(tx, bit_ps, received):
    """Decode 8N1 bytes from ``tx``, sampling each bit in its middle."""
    while True:
        await FallingEdge(tx)
        await Timer(bit_ps * 3 // 2, unit="ps")
        byte = 0
        for i in range(8):
            byte |= int(tx.value) << i
            await Timer(bit_ps, unit="ps")
        if int(tx.value):               # a stop bit: a byte
            received.append(byte)


async def _uart_driver(rx, bit_ps, data):
    for byte in data:
        for level in [0] + [(byte >> i) & 1 for i in range(8)] + [1, 1]:
            rx.value = level
            await Timer(bit_ps, unit="ps")


def _load(dut, image, word_bytes):
    """Write the image straight into the RAM's array through VPI: no clock cycles spent."""
    mem = dut.soc.ram.mem
    image += bytes(-len(image) % word_bytes)
    for i in range(0, len(image), word_bytes):
        word = int.from_bytes(image[i:i + word_bytes], "little")
        if word:
            mem[i // word_bytes].value = word


def _signal(dut, path):
    """The handle at ``path`` (dotted, below ``dut``), or ``None`` if the model does not show
    it."""
    handle = dut
    try:
        for name in path.split("."):
            handle = getattr(handle, name)
    except AttributeError:
        return None
    return handle


def _stop_state(dut):
    """``(pc, engine status)`` now. The core keeps its pc as a word address (30 bits)."""
    values = []
    for paths in (("soc.core.pc",),
                  # the engine on its own clock is one level down, in its crossing
                  ("soc.engine.frontend.status", "soc.engine.engine.frontend.status")):
        handles = [_signal(dut, path) for path in paths]
        handle = next((h for h in handles if h is not None), None)
        value = None if handle is None else handle.value
        values.append(value.to_unsigned() << (32 - len(value))
                      if value is not None and value.is_resolvable else None)
    return tuple(values)


@cocotb.test()
async def run_firmware(dut):
    """Reset, load, run until the firmware writes SIM.EXIT or the cycle limit."""
    args = test_args()
    bit_ps = args["uart_divisor"] * PERIOD_PS
    dut.rst.value = 1
    dut.uart_rx.value = 1
    dut.buttons.value = args.get("buttons", 0)
    _load(dut, Path(args["image"]).read_bytes(), args["ram_word_bytes"])
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    # The wrapper registers its inputs: the SoC sees rst fall on the first of these edges and
    # runs from the second, where the count starts.
    await ClockCycles(dut.clk, 2)

    received = []
    cocotb.start_soon(_uart_monitor(dut.uart_tx, bit_ps, received))
    if args.get("uart_input"):
        cocotb.start_soon(_uart_driver(dut.uart_rx, bit_ps, bytes.fromhex(args["uart_input"])))
    start_ps = get_sim_time("ps")
    start_wall = time.perf_counter()
    timed_out = False
    try:
        await with_timeout(RisingEdge(dut.sim_exit_valid), args["max_cycles"] * PERIOD_PS, "ps")
    except cocotb.triggers.SimTimeoutError:
        timed_out = True
    wall = time.perf_counter() - start_wall
    cycles = int((get_sim_time("ps") - start_ps) // PERIOD_PS)
    pc, engine_status = _stop_state(dut)
    Path(args["results_file"]).write_text(json.dumps({
        "uart": bytes(received).hex(),
        "exit_code": None if timed_out else int(dut.sim_exit_code.value),
        "timed_out": timed_out,
        "cycles": cycles,
        "wall_time_s": wall,
        "leds": int(dut.leds.value),
        "pc": pc,
        "engine_status": engine_status,
    }))
