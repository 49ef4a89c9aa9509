"""The boards' demo firmware on a board's default design, simulated: what a user with the board
should see over its UART."""

import re

import pytest

from rvnpu.boards import board
from rvnpu.firmware.build import EXAMPLES, build_firmware
from rvnpu.sim import toolchain
from rvnpu.sim.soc_sim import SocSimulator


pytestmark = pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                                reason="Verilator not available")


@pytest.mark.parametrize("name, bench, max_cycles", [
    # The ULX3S-25F's design: an 8x6 weight-stationary array of raw cells (the zero points
    # off below the array), 29 of them in logic, the accumulator's read staged, one
    # requantisation lane, TFLite path only.
    ("ulx3s-25f", 32, 6_000_000),
    # The OrangeCrab's: the same part and design.
    ("orangecrab", 32, 6_000_000),
    # The ULX3S-85F's: the same cells at 16x8, with both requantisation conventions and the
    # post unit.
    ("ulx3s-85f", 32, 6_000_000),
    # The UP5K design: 4x1 array without requantisation and a core without M, which
    # requantises in software (about 5,000 cycles an output) and runs its own reference
    # GEMMs: the demo sizes its benchmark down to 16 there.
    ("icebreaker", 16, 27_000_000),
    # The GW1NR-9 design: 4x4 array without requantisation, which its core (with M) does.
    ("tang-nano-9k", 16, 27_000_000),
])
def test_board_demo_passes_on_the_board_design(name, bench, max_cycles, tmp_path):
    b = board(name)
    # A fast UART, and the RAM holding the image: booting from ROM or flash is tested in
    # test_boot and test_flash_boot.
    config = b.simulated_config()
    e = config.engine
    image = build_firmware([EXAMPLES["board_demo"]], tmp_path / "fw", config)
    # The demo waits for a button after its report; the run ends at the cycle limit.
    result = SocSimulator(config).run(image, max_cycles=max_cycles)
    text = result.text
    assert "FAIL" not in text, text
    assert "self-test: PASS (0 failed)" in text, text
    figures = re.search(rf"gemm {bench}x{bench}x{bench} int8 on a {e.rows}x{e.cols} array: "
                        r"(\d+) cycles .* utilisation (\d+)\.(\d)%", text)
    assert figures, text
    assert 0 < int(figures.group(1)) < max_cycles
    # The same GEMM replayed from a recorded list, checked against the direct run, where the
    # engine requantises (the library records no GEMM that the core requantises).
    if e.with_requant:
        replay = re.search(r"^ok   replayed from a list of \d+ commands: (\d+) cycles", text,
                           re.M)
        assert replay and 0 < int(replay.group(1)) < int(figures.group(1)), text
    else:
        assert "replayed: skipped, the core requantises on this engine" in text, text
    assert "press a button to run again" in text, text
