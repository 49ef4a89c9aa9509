"""Interrupts on the whole SoC (Amaranth's simulator): C firmware sleeps in WFI until the
timer interrupt wakes it, and the TIMER counted the cycles it slept.

The core's interrupt rules are checked instruction by instruction against the ISS in
tests/test_cpu.py; this is the firmware's view: the helpers in ``rvnpu.h``, the handler
``rvnpu_irq_set_handler`` installs, MTIMECMP and SLEEP.
"""

import re

from amaranth.sim import Simulator

from rvnpu.firmware.build import FIRMWARE_DIR, build_firmware
from rvnpu.hdl.soc.soc import Soc
from rvnpu.spec.config import EngineConfig
from rvnpu.spec.memory_map import SocConfig
from rvnpu.spec.rv32 import Interrupt


#: A small engine, so that the SoC simulates quickly; 8 KiB of RAM hold the firmware.
TINY = EngineConfig(rows=1, cols=1, spad_depth=16, acc_depth=16, qp_depth=4, bus_width=32,
                    mem_bytes=1 << 13)
CONFIG = SocConfig(engine=TINY)
DELAY = 1500

# Exits with the cycles slept if every check passed, else with a small failure code.
SLEEPER = r"""
#include "rvnpu.h"

static volatile uint32_t fired, code;

static void on_interrupt(uint32_t irq)
{
    code = irq;
    fired++;
    rvnpu_timer_set_compare(UINT64_MAX);        /* remove the cause */
}

int main(void)
{
    rvnpu_irq_set_handler(on_interrupt);
    uint64_t slept = rvnpu_sleep_cycles();
    uint64_t start = rvnpu_timer_cycles();
    rvnpu_timer_set_compare(start + DELAY);
    rvnpu_irq_enable(RVNPU_IRQ_BIT(RVNPU_IRQ_TIMER));
    while (!fired)
        rvnpu_wfi();
    uint64_t end = rvnpu_timer_cycles();
    slept = rvnpu_sleep_cycles() - slept;
    rvnpu_irq_disable(RVNPU_IRQ_BIT(RVNPU_IRQ_TIMER));
    if (fired != 1 || code != RVNPU_IRQ_TIMER)
        return 1;
    if (end < start + DELAY)
        return 2;
    if (slept > end - start)
        return 3;
    return (int)slept;
}
"""


def run_to_exit(dut, max_cycles):
    """Simulate ``dut`` until its firmware writes SIM.EXIT; returns ``(exit code, cycles)``."""
    result = []

    async def testbench(ctx):
        for cycle in range(max_cycles):
            await ctx.tick()
            if ctx.get(dut.sim_exit_valid):
                result.append((ctx.get(dut.sim_exit_code), cycle))
                return

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert result, f"no exit within {max_cycles} cycles"
    return result[0]


def test_firmware_sleeps_until_the_timer_interrupt(tmp_path):
    source = tmp_path / "sleeper.c"
    source.write_text(SLEEPER)
    image = build_firmware([source], tmp_path / "fw", CONFIG, defines={"DELAY": DELAY}).image
    code, cycles = run_to_exit(Soc(CONFIG, image=image), 20_000)
    assert code not in (1, 2, 3), f"check {code} failed"
    # It slept from its WFI (a few dozen cycles after reading the start time) until the
    # count reached MTIMECMP: most of DELAY, never more.
    assert DELAY - 200 < code <= DELAY, code
    assert cycles > DELAY


def test_c_interrupt_codes_are_the_specs():
    header = (FIRMWARE_DIR / "include" / "rvnpu.h").read_text()
    codes = {name: int(value) for name, value in
             re.findall(r"#define RVNPU_IRQ_(EXTERNAL|TIMER) (\d+)", header)}
    assert codes == {"EXTERNAL": Interrupt.MACHINE_EXTERNAL, "TIMER": Interrupt.MACHINE_TIMER}
