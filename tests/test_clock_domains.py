"""The engine on a clock of its own (``SocConfig.engine_clock_hz``), on Amaranth's simulator.

The engine in the ``engine`` domain, the core and the testbench in ``sync``, at unequal clocks:
2:1, 3:1 and 10:7, the engine faster (the boards' case) and slower. Every run must leave the
bytes the golden model leaves (and numpy's GEMM), answer as it answers, and raise the
interrupt as it says, whatever the ratio: commands and answers cross in asynchronous FIFOs,
the interrupt in a synchroniser, and the RAM has a port in each clock.
"""

import dataclasses
import os

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out, connect
from amaranth.sim import Simulator

from rvnpu.compiler.command_list import as_command_list
from rvnpu.firmware.build import EXAMPLES, build_firmware
from rvnpu.hdl.soc.clock_crossing import ENGINE_DOMAIN, ClockCrossedEngine
from rvnpu.hdl.soc.dual_port_ram import DualPortSram
from rvnpu.hdl.soc.soc import Soc
from rvnpu.sim import toolchain
from rvnpu.sim.golden.examples import matmul_example, parse_checksum
from rvnpu.sim.soc_sim import SocSimulator
from rvnpu.spec.commands import (Funct, IsaError, Space, encode, field_of, pack_list, unpack_list,
                                 unpack_status)
from rvnpu.spec.config import EngineConfig
from rvnpu.spec.memory_map import ConfigError, SocConfig

from sim_until import run_until_done
from test_engine_fetch import (_busy_list, _refusal_program, gemm_job, program_testbench,
                               run_golden)


#: (core period, engine period) in ns.
RATIOS = {
    "engine-2x": (10, 5),
    "engine-3x": (9, 3),
    "engine-10:7": (10, 7),
    "core-2x": (5, 10),
    "core-3x": (3, 9),
    "core-10:7": (7, 10),
}

#: Every ratio of every test takes 20-30 CPU minutes on Amaranth's simulator; the test suite
#: runs the three ratios the issue names on the engine and the SoC in Verilator, and
#: RVNPU_LONG=1 runs the rest (both directions of each ratio, the SoC on Amaranth's simulator).
LONG = pytest.mark.skipif(os.environ.get("RVNPU_LONG") != "1",
                          reason="long: set RVNPU_LONG=1 to run every clock ratio")


def ratios(names, in_suite):
    """``names`` as parameters, those not ``in_suite`` marked long."""
    return [name if name in in_suite else pytest.param(name, marks=LONG) for name in names]


#: An engine of the lists tests (tests/test_engine_fetch.py), without the post unit.
ENGINE = EngineConfig(rows=4, cols=4, spad_depth=64, acc_depth=32, qp_depth=8, bus_width=32,
                      mem_bytes=1 << 12, post_unit=False)
ENGINE_OS = EngineConfig(rows=3, cols=2, dataflow="os", spad_depth=32, acc_depth=16,
                         qp_depth=4, mem_bytes=1 << 12, requant_modes="tflite",
                         post_unit=False)


def simulate(dut, periods, testbench, limit_ns):
    core_ns, engine_ns = periods
    sim = Simulator(dut)
    sim.add_clock(core_ns * 1e-9)
    sim.add_clock(engine_ns * 1e-9, domain=ENGINE_DOMAIN)
    run_until_done(sim, testbench, limit_ns * 1e-9, 1000 * max(periods) * 1e-9)


# -- The engine alone ------------------------------------------------------------------------

class _CrossedBench(wiring.Component):
    """The engine in its own domain beside the two-clock RAM; the testbench is the core."""

    def __init__(self, config, bus_register=False):
        self.engine = ClockCrossedEngine(config)
        self.ram = DualPortSram(depth=config.mem_bytes // config.bus_bytes,
                                 data_width=config.bus_width,
                                 addr_width=self.engine.bus_signature.addr_width,
                                 bus_domain=ENGINE_DOMAIN, registered_requests=bus_register)
        super().__init__({"irq": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine, m.submodules.ram = self.engine, self.ram
        connect(m, self.engine.bus, self.ram.bus)
        m.d.comb += self.irq.eq(self.engine.irq)
        return m


def run_crossed(config, image, program, periods, bus_register=False):
    """As tests/test_engine_fetch.py's ``run_rtl``, with the engine on the second clock: the
    testbench writes the RAM, issues the commands, collects the answers and the interrupt
    level at each answer (and before the first command), and reads the RAM back, all in
    ``sync``. With ``bus_register`` the RAM takes the engine's requests into a register
    (reads answered a cycle later). Returns ``(memory, answers, irq trace)``."""
    bench = _CrossedBench(config, bus_register)
    testbench, out = program_testbench(bench, config, image, program)
    slowest = max(periods)
    cycles = 20_000 + 2_000 * len(program)
    simulate(bench, periods, testbench, cycles * slowest)
    assert out["memory"] is not None, f"the engine hung: no end within {cycles} cycles"
    return out["memory"], out["answers"], out["irq"]


@pytest.mark.parametrize("bus_register", [False, True])
@pytest.mark.parametrize("ratio", ratios(RATIOS, ("engine-2x", "core-3x", "engine-10:7")))
def test_gemm_direct_and_as_a_list_are_bit_exact_at_any_ratio(ratio, bus_register):
    job, expected = gemm_job(ENGINE, 7, (2 * ENGINE.rows + 1, ENGINE.cols + 3, 11))
    listed = as_command_list(job)
    program = listed.program + [encode(Funct.STATUS, clear_done=1), encode(Funct.STATUS)]
    direct_mem, direct_answers, _ = run_crossed(ENGINE, job.image, job.program, RATIOS[ratio],
                                                bus_register)
    list_mem, list_answers, irq = run_crossed(ENGINE, listed.image, program, RATIOS[ratio],
                                              bus_register)
    gold_mem, gold_answers = run_golden(ENGINE, listed.image, program)
    np.testing.assert_array_equal(job.read_output(direct_mem), expected)
    np.testing.assert_array_equal(list_mem, gold_mem)
    assert list_answers == gold_answers and direct_answers == [0]
    # The synchronised interrupt: low before RUN, high by the time the FENCE answer crossed,
    # low again by the time the acknowledgement's answer did.
    assert irq == [0, 1, 0, 0]


@pytest.mark.parametrize("ratio", ratios(["engine-10:7", "core-3x"], ("engine-10:7",)))
def test_refused_entries_and_runs_match_the_golden_model(ratio):
    image, program = _refusal_program(ENGINE)
    gold_mem, gold_answers = run_golden(ENGINE, image, program)
    mem, answers, irq = run_crossed(ENGINE, image, program, RATIOS[ratio])
    assert [w & ~1 & 0xffffffff for w in answers] == gold_answers
    np.testing.assert_array_equal(mem, gold_mem)
    assert irq == [0, 1, 0, 0, 0, 1, 1, 0]


@pytest.mark.parametrize("config, ratio, bus_register",
                         [(ENGINE, "engine-3x", False), (ENGINE, "engine-3x", True),
                          pytest.param(ENGINE_OS, "core-10:7", False, marks=LONG)])
def test_lists_racing_the_load_unit_match_the_golden_model(config, ratio, bus_register):
    rng = np.random.default_rng(0xC10C + config.rows)
    commands = _busy_list(config, rng, 40)
    image = [(0, rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()),
             (2048, pack_list(commands))]
    program = [encode(Funct.LOAD, dram_addr=5, local_row=0, space=Space.SPAD_B, rows=9,
                      cols=config.cols),
               encode(Funct.RUN, list_addr=2048, count=len(commands)),
               encode(Funct.STATUS),
               encode(Funct.STORE_ACC, dram_addr=1600, acc_row=0, rows=config.acc_depth,
                      cols=config.cols),
               encode(Funct.FENCE)]
    gold_mem, gold_answers = run_golden(config, image, program)
    mem, answers, _ = run_crossed(config, image, program, RATIOS[ratio], bus_register)
    # STATUS answers at once, while the list may still run: only its error fields, which
    # the commands before it fixed, are the golden model's for sure.
    assert answers[1:] == gold_answers[1:]
    np.testing.assert_array_equal(mem, gold_mem)


# -- The whole SoC running firmware ----------------------------------------------------------

#: A small SoC: a 2x2 engine with the command fetcher; the UART at 4 cycles a bit.
SOC = SocConfig(engine=EngineConfig(rows=2, cols=2, spad_depth=64, acc_depth=32, qp_depth=8,
                                    bus_width=32, mem_bytes=1 << 14, post_unit=False),
                clock_hz=24_000_000, uart_baud=6_000_000, engine_clock_hz=36_000_000)


def run_soc(config, image, periods, max_cycles):
    """Run the SoC until its firmware writes SIM.EXIT; returns ``(exit code, UART text)``.
    The testbench receives the UART (8N1 at ``config.uart_divisor`` core cycles a bit)."""
    dut = Soc(config, image=image)
    divisor = config.uart_divisor
    result, text = [], bytearray()

    async def testbench(ctx):
        countdown, bits = None, []
        for _ in range(max_cycles):
            await ctx.tick()
            tx = ctx.get(dut.uart_tx)
            if countdown is None:
                if not tx:
                    countdown, bits = divisor + divisor // 2, []
            else:
                countdown -= 1
                if countdown == 0:
                    if len(bits) < 8:
                        bits.append(tx)
                        countdown = divisor
                    else:
                        assert tx, "a UART frame without its stop bit"
                        text.append(sum(b << i for i, b in enumerate(bits)))
                        countdown = None
            if ctx.get(dut.sim_exit_valid):
                result.append(ctx.get(dut.sim_exit_code))
                return

    simulate(dut, periods, testbench, (max_cycles + 10) * periods[0])
    assert result, f"no exit within {max_cycles} cycles: {text.decode(errors='replace')}"
    return result[0], text.decode(errors="replace")


@LONG
@pytest.mark.parametrize("ratio", ["engine-10:7"])
def test_matmul_example_matches_numpy_on_two_clocks(ratio, tmp_path):
    """The GEMM example: the C library issues every command (and replays them recorded);
    what it computes must be numpy's result, checksum for checksum."""
    m, n, k, seed = 5, 3, 6, 11
    image = build_firmware(EXAMPLES["matmul"], tmp_path / "fw", SOC,
                           defines={"M": m, "N": n, "K": k, "SEED": seed}).image
    code, text = run_soc(SOC, image, RATIOS[ratio], 400_000)
    golden = matmul_example(m, n, k, seed=seed, config=SOC.engine)
    assert code == 0, text
    assert parse_checksum(text) == golden.checksum, text
    assert "replayed: cycles" in text, text


LIST_WAIT = r"""
#include "rvnpu.h"

static const uint8_t expected[] = {EXPECTED_BYTES};
static volatile uint32_t fired;

static void on_interrupt(uint32_t irq)
{
    fired += irq == RVNPU_IRQ_EXTERNAL ? 1 : 100;
    rvnpu_irq_disable(RVNPU_IRQ_BIT(RVNPU_IRQ_EXTERNAL));   /* list_done stays for main */
}

static int compare(void)
{
    const volatile uint8_t *out = (const volatile uint8_t *)OUT_ADDR;
    int wrong = 0;
    for (uint32_t i = 0; i < sizeof expected; i++)
        wrong += out[i] != expected[i];
    return wrong;
}

static void clear_output(void)
{
    volatile uint8_t *out = (volatile uint8_t *)OUT_ADDR;
    for (uint32_t i = 0; i < sizeof expected; i++)
        out[i] = 0x5A;
}

int main(void)
{
    uint32_t free_bytes;
    uintptr_t free = (uintptr_t)rvnpu_free_ram(&free_bytes);
    if (free > DATA_START || free + free_bytes < DATA_END)
        return 1;                                /* the test's data would not be safe */
    const rvnpu_list_entry_t *list = (const rvnpu_list_entry_t *)LIST_ADDR;

    /* 1. Asleep in WFI until the list's interrupt wakes the core (interrupts off). */
    uint64_t slept = rvnpu_sleep_cycles();
    rvnpu_run_list(list, LIST_COUNT);
    uint32_t status = rvnpu_list_wait();
    slept = rvnpu_sleep_cycles() - slept;
    if (rvnpu_status_error(status) || !rvnpu_status_list_done(status))
        return 2;
    if (slept == 0)
        return 3;
    if (compare())
        return 4;

    /* 2. Interrupt-driven: the handler runs once; after the acknowledgement's answer the
     * line must be low, so enabling the interrupt again must not fire it. */
    clear_output();
    rvnpu_irq_set_handler(on_interrupt);
    rvnpu_irq_enable(RVNPU_IRQ_BIT(RVNPU_IRQ_EXTERNAL));
    rvnpu_run_list(list, LIST_COUNT);
    while (!fired)
        rvnpu_wfi();
    rvnpu_issue(rvnpu_encode_status(0u, 1u));
    rvnpu_irq_enable(RVNPU_IRQ_BIT(RVNPU_IRQ_EXTERNAL));
    for (volatile int i = 0; i < 50; i++)
        ;
    rvnpu_irq_disable(RVNPU_IRQ_BIT(RVNPU_IRQ_EXTERNAL));
    if (fired != 1)
        return 5;
    if (compare())
        return 6;

    /* 3. The same commands issued by the core one by one. */
    clear_output();
    rvnpu_list_issue(list, LIST_COUNT);
    if (rvnpu_status_error(rvnpu_fence()))
        return 7;
    return compare() ? 8 : 0;
}
"""


def relocate(program, offset):
    """``program`` with every main-memory address (``dram_addr``, RUN's ``list_addr``)
    moved up by ``offset``: a job the compiler placed from 0, placed above the firmware."""
    moved = []
    for funct, op1, op2 in program:
        for name in ("dram_addr", "list_addr"):
            try:
                f = field_of(funct, name)
            except IsaError:
                continue
            assert (f.operand, f.lsb, f.width) == (1, 0, 32), name
            op1 += offset
        moved.append((funct, op1, op2))
    return moved


def list_wait_case(config, seed, base):
    """A compiled GEMM as a command list placed at ``base``, the RAM image bytes above it,
    and the output bytes the golden model leaves (checked against numpy's GEMM here)."""
    job, expected = gemm_job(config.engine, seed, (5, 3, 7))
    job = dataclasses.replace(job, program=relocate(job.program, base),
                              image=[(addr + base, data) for addr, data in job.image],
                              out_addr=job.out_addr + base)
    listed = as_command_list(job)
    gold_mem, answers = run_golden(config.engine, listed.image, listed.program)
    np.testing.assert_array_equal(job.read_output(gold_mem), expected)
    assert unpack_status(answers[-1])["error"] == 0
    out_bytes = job.out_shape[0] * job.out_shape[1] * job.out_bytes
    return listed, gold_mem[job.out_addr:job.out_addr + out_bytes]


def list_wait_image(config, tmp_path, seed):
    """The RAM image of LIST_WAIT: the firmware, and above it, from the middle of the RAM, a
    compiled GEMM's operands and command list; the firmware holds the golden output."""
    base = config.ram_bytes // 2
    listed, out = list_wait_case(config, seed, base)
    end = max(addr + len(data) for addr, data in listed.image)
    list_addr, list_data = listed.image[-1]
    source = tmp_path / "list_wait.c"
    source.write_text(LIST_WAIT.replace("EXPECTED_BYTES", ", ".join(str(b) for b in out)))
    defines = {"OUT_ADDR": listed.out_addr, "LIST_ADDR": list_addr,
               "LIST_COUNT": len(unpack_list(list_data)), "DATA_START": base, "DATA_END": end}
    firmware = build_firmware([source], tmp_path / "fw", config, defines=defines).image
    assert len(firmware) <= base
    image = bytearray(firmware) + bytearray(end - len(firmware))
    for addr, data in listed.image:
        image[addr:addr + len(data)] = data
    return bytes(image)


@LONG
@pytest.mark.parametrize("ratio", ["engine-2x", "core-3x"])
def test_command_list_with_wfi_and_interrupt_on_two_clocks(ratio, tmp_path):
    """RUN, then WFI until the engine's interrupt; then the interrupt taken by a handler;
    then the same list issued by the core: the golden model's bytes each time."""
    code, text = run_soc(SOC, list_wait_image(SOC, tmp_path, seed=5), RATIOS[ratio], 200_000)
    assert code == 0, f"check {code} failed {text}"


# -- Configuration ---------------------------------------------------------------------------

def test_split_clocks_refuse_single_port_ram_in_one_line():
    with pytest.raises(ConfigError, match="^engine_clock_hz .* needs ram_style 'block'"):
        SocConfig(ram_style="spram", engine_clock_hz=48_000_000)
    with pytest.raises(ConfigError, match="engine_clock_hz must be an integer"):
        SocConfig(engine_clock_hz=0)


def test_bus_register_needs_the_dual_port_ram_and_round_trips():
    from dataclasses import replace

    from rvnpu.boards import BOARDS

    with pytest.raises(ConfigError, match="^bus_register needs the RAM's true dual-port form"):
        SocConfig(bus_register=True)
    with pytest.raises(ConfigError, match="^bus_register must be True or False, not 1$"):
        SocConfig(engine_clock_hz=48_000_000, bus_register=1)
    registered = replace(SOC, bus_register=True)
    assert SocConfig.from_dict(registered.to_dict()) == registered
    assert "bus_register" not in SOC.to_dict()
    assert SocConfig(ram_style="dual", bus_register=True).bus_register
    # A board that registers the bus drops the register with the engine on its clock.
    board = BOARDS["ulx3s-25f"]
    assert board.bus_register and board.soc_config().bus_register
    assert not board.soc_config(engine_clock_hz=0).bus_register


def test_engine_clock_round_trips_and_one_clock_keeps_its_dictionary():
    assert "engine_clock_hz" not in SocConfig().to_dict()
    assert not SocConfig().split_clocks and SOC.split_clocks
    assert SocConfig.from_dict(SOC.to_dict()) == SOC


# -- The SoC in Verilator, with the engine's clock made by the simulation wrapper -------------

@pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                    reason="Verilator not available")
def test_verilator_soc_runs_the_examples_on_two_clocks(tmp_path):
    """``SocSimulator`` clocks the engine at ``engine_clock_hz`` beside the core's
    ``clock_hz`` (here 36 and 24 MHz: 3:2); the GEMM example and the list/WFI firmware pass."""
    soc = SocSimulator(SOC)
    m, n, k, seed = 9, 7, 10, 3
    image = build_firmware(EXAMPLES["matmul"], tmp_path / "mm", SOC,
                           defines={"M": m, "N": n, "K": k, "SEED": seed}).image
    result = soc.run(image, max_cycles=2_000_000)
    assert result.exit_code == 0, result.text
    assert parse_checksum(result.text) == \
        matmul_example(m, n, k, seed=seed, config=SOC.engine).checksum, result.text
    assert result.engine_status is not None       # the front end found one level down
    image = list_wait_image(SOC, tmp_path, seed=9)
    result = soc.run(image, max_cycles=2_000_000)
    assert result.exit_code == 0, f"check {result.exit_code} failed"
