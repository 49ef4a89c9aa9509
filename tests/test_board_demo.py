"""The boards' demo firmware on a board's default design, simulated: what a user with the board
should see over its UART."""

import dataclasses
import re

import pytest

from rvnpu.boards import board
from rvnpu.firmware import EXAMPLES, build_firmware
from rvnpu.sim import toolchain
from rvnpu.sim.soc_sim import SocSimulator


pytestmark = pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                                reason="Verilator not available")


def test_board_demo_passes_on_the_ulx3s_25f_design(tmp_path):
    # The LFE5U-25F design: 4x4 array, one requantisation lane, TFLite path only. A fast UART
    # keeps printing from dominating the run.
    b = board("ulx3s-25f")
    config = dataclasses.replace(b.soc_config(), uart_baud=b.clock_hz // 8)
    assert (config.engine.lanes, config.engine.requant_modes) == (1, "tflite")
    image = build_firmware([EXAMPLES["board_demo"]], tmp_path / "fw", config)
    # The demo waits for a button after its report; the run ends at the cycle limit.
    result = SocSimulator(config).run(image, max_cycles=6_000_000)
    text = result.text
    assert "FAIL" not in text, text
    assert "self-test: PASS (0 failed)" in text, text
    bench = re.search(r"gemm 32x32x32 int8 on a 4x4 array: (\d+) cycles .* utilisation "
                      r"(\d+)\.(\d)%", text)
    assert bench, text
    assert 0 < int(bench.group(1)) < 6_000_000
    assert "press a button to run again" in text, text
