"""A firmware that never finishes is stopped by the cycle budget (the watchdog) and reported
with where it was: the core's pc, named from the ELF, and the engine's status word."""

import re

import pytest

from cli_runner import rvnpu
from rvnpu.firmware.build import build_firmware
from rvnpu.firmware.elf import elf_symbols, function_finder
from rvnpu.sim import toolchain
from rvnpu.sim.soc_sim import FirmwareHang, SocRun, SocSimulator
from rvnpu.spec.commands import STATUS_FIELDS, unpack_status
from rvnpu.spec.memory_map import SocConfig


CONFIG = SocConfig(uart_baud=3_000_000)      # tests/test_soc.py's: the same Verilator build

pytestmark = pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                                reason="Verilator not available")

# An unknown function code, which the engine refuses (its sticky error bit), then a loop in a
# function of its own, which the report must name.
STUCK = """\
#include "rvnpu.h"

__attribute__((noinline)) void wait_forever(void)
{
    for (;;)
        __asm__ volatile("");
}

int main(void)
{
    RVNPU_CUSTOM0(0x7f, 0, 0);
    wait_forever();
    return 0;
}
"""


@pytest.fixture(scope="module")
def stuck(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stuck")
    (folder / "stuck.c").write_text(STUCK)
    return folder / "stuck.c", build_firmware(folder / "stuck.c", folder / "fw", CONFIG)


def test_a_run_stopped_by_the_watchdog_says_where_it_was(stuck):
    _, firmware = stuck
    run = SocSimulator(CONFIG).run(firmware, max_cycles=20_000)
    assert run.timed_out and run.cycles == 20_000
    start = elf_symbols(firmware.elf)["wait_forever"]
    assert start <= run.pc < start + 16, f"pc 0x{run.pc:08x}, wait_forever at 0x{start:08x}"
    status = unpack_status(run.engine_status)
    assert status["busy"] == 0 and status["error"] == 1 and status["error_funct"] == 0x7f
    with pytest.raises(FirmwareHang) as error:
        run.raise_if_hung(20_000, function_finder(firmware.elf))
    assert str(error.value) == (f"the firmware did not finish in 20000 cycles: "
                                f"pc 0x{run.pc:08x} (in wait_forever), engine error, "
                                f"status 0x{run.engine_status:08x}")


def test_rvnpu_sim_reports_a_hang_in_one_line_with_exit_status_1(stuck, tmp_path):
    source, _ = stuck
    result = rvnpu("sim", str(source), "--uart-baud", "3000000", "--max-cycles", "30000",
                   cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert re.fullmatch(r"rvnpu: error: the firmware did not finish in 30000 cycles: "
                        r"pc 0x[0-9a-f]{8} \(in wait_forever\), engine error, "
                        r"status 0x[0-9a-f]{8}", lines[0]), lines[0]


def test_stop_description_decodes_the_status_word():
    busy = next(f for f in STATUS_FIELDS if f.name == "busy")
    lists = next(f for f in STATUS_FIELDS if f.name == "list_busy")
    run = SocRun(uart=b"", exit_code=None, timed_out=True, cycles=5, wall_time_s=0,
                 total_time_s=0, build_time_s=0, leds=0, pc=0x124,
                 engine_status=1 << busy.lsb | 1 << lists.lsb)
    names = {0x100: "rvnpu_wait"}
    assert run.stop_description(lambda pc: names.get(pc & ~0xff)) == \
        f"pc 0x00000124 (in rvnpu_wait), engine busy, list_busy, status 0x{run.engine_status:08x}"
    assert run.stop_description().startswith("pc 0x00000124, engine busy")
    with pytest.raises(FirmwareHang, match="did not finish in 5 cycles: pc 0x00000124"):
        run.raise_if_hung(5)
    finished = SocRun(uart=b"", exit_code=0, timed_out=False, cycles=5, wall_time_s=0,
                      total_time_s=0, build_time_s=0, leds=0)
    finished.raise_if_hung(5)                    # a run that exited is not a hang
