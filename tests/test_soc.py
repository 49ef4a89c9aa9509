"""The whole SoC in Verilator, running firmware built with zig: what a user of the chip sees.

One Verilator build serves every test (the image is loaded at run time). The SoC is the default
one but for a fast UART (a few cycles a bit), so that printing does not dominate the cycles.
"""

import re

import pytest

from rvnpu.firmware.build import EXAMPLES, build_firmware
from rvnpu.spec.memory_map import SocConfig
from rvnpu.sim import toolchain
from rvnpu.sim.golden.examples import matmul_example, parse_checksum
from rvnpu.sim.soc_sim import SocSimulator


CONFIG = SocConfig(uart_baud=3_000_000)      # 8 cycles a bit at 24 MHz

pytestmark = pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                                reason="Verilator not available")


@pytest.fixture(scope="module")
def soc():
    return SocSimulator(CONFIG)


def run(soc, tmp_path, source, *, defines=None, max_cycles=5_000_000, **kwargs):
    image = build_firmware(source, tmp_path / "fw", CONFIG, defines=defines)
    return soc.run(image, max_cycles=max_cycles, **kwargs)


def test_hello_greets_and_exits_0(soc, tmp_path):
    result = run(soc, tmp_path, EXAMPLES["hello"])
    lines = result.text.splitlines()
    assert lines[0] == "Hello from rvnpu!"
    assert lines[1] == "8x8 int8 engine, 64 KiB RAM, 24 MHz"
    assert lines[2] == "engine status 0x00000000 (ok)"
    assert lines[3] == ("printf: [-42] [7] [3000000000] [beef] [BEEF] [   42] [42   ] [-0042] "
                        "[str] [c] [%] [-1234567890123]")
    assert (result.exit_code, result.timed_out, result.leds) == (0, False, 0xA5)
    assert 0 < result.cycles < 200_000


def test_selftest_passes(soc, tmp_path):
    result = run(soc, tmp_path, EXAMPLES["selftest"])
    assert "FAIL" not in result.text, result.text
    assert re.search(r"^selftest: 0 of \d+ checks failed$", result.text, re.M), result.text
    assert result.exit_code == 0


def test_matmul_matches_the_golden_model(soc, tmp_path):
    m, n, k, seed = 20, 28, 36, 7       # ragged tiles on the 8x8 array
    result = run(soc, tmp_path, EXAMPLES["matmul"],
                 defines={"M": m, "N": n, "K": k, "SEED": seed, "RELU": None})
    golden = matmul_example(m, n, k, seed=seed, config=CONFIG.engine, relu=True)
    assert result.exit_code == 0, result.text
    assert parse_checksum(result.text) == golden.checksum, result.text
    # Both issue paths ran, and the recorded one checked itself against the direct one.
    assert re.search(r"^direct: cycles \d+", result.text, re.M)
    assert re.search(r"replayed: cycles \d+, engine active \d+", result.text)


ECHO = r"""
#include "rvnpu.h"

int main(void)
{
    /* Echo four received bytes in upper case, then run an illegal instruction. */
    for (int got = 0; got < 4;) {
        int c = rvnpu_uart_getc();
        if (c >= 0) {
            putchar(c >= 'a' && c <= 'z' ? c - 32 : c);
            got++;
        }
    }
    extern char bad[];
    printf("\nillegal at 0x%08x\n", (unsigned)(uintptr_t)bad);
    __asm__ volatile(".globl bad\nbad: .word 0");
    return 1;
}
"""


def test_uart_receive_and_trap_report(soc, tmp_path):
    source = tmp_path / "echo.c"
    source.write_text(ECHO)
    result = run(soc, tmp_path, source, uart_input=b"ping")
    assert result.text.startswith("PING\n"), result.text
    address = re.search(r"illegal at (0x[0-9a-f]{8})", result.text).group(1)
    assert f"trap: mcause=0x00000002 (illegal instruction) mepc={address}" in result.text
    assert result.exit_code == 0xE0


def test_cycle_limit(soc, tmp_path):
    source = tmp_path / "spin.c"
    source.write_text("int main(void) { for (;;) ; }\n")
    result = run(soc, tmp_path, source, max_cycles=20_000)
    assert result.timed_out and result.exit_code is None
    assert result.cycles == 20_000
