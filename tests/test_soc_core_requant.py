"""An engine built without requantisation (the iCEBreaker's): the C library runs the GEMM raw
and the core requantises, bit-exact with the golden model all the same."""

import re

import pytest

from rvnpu.boards import board
from rvnpu.firmware.build import EXAMPLES, build_firmware
from rvnpu.sim import toolchain
from rvnpu.sim.golden.examples import matmul_example, parse_checksum
from rvnpu.sim.soc_sim import SocSimulator


pytestmark = pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                                reason="Verilator not available")


def test_matmul_requantised_by_the_core_matches_the_golden_model(tmp_path):
    b = board("icebreaker")
    # The board's design (the same simulation build as its demo test).
    config = b.simulated_config()
    assert not config.engine.with_requant
    m, n, k, seed = 9, 13, 11, 5
    image = build_firmware([EXAMPLES["matmul"]], tmp_path / "fw", config,
                           defines={"M": m, "N": n, "K": k, "SEED": seed, "RELU": None})
    result = SocSimulator(config).run(image, max_cycles=5_000_000)
    golden = matmul_example(m, n, k, seed=seed, config=config.engine, relu=True)
    assert result.exit_code == 0, result.text
    assert parse_checksum(result.text) == golden.checksum, result.text
    assert re.search(r"^direct: cycles \d+", result.text, re.M), result.text
    assert "recorded: skipped, the core requantises" in result.text, result.text
