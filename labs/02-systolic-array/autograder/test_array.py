"""Lab 2 autograder: the systolic array inside the execute unit, against the golden model.

Random int8 operands under the grading seed (the ``rng`` fixture), the extremes -128 and 127
in the first scratchpad rows, random zero points; two array shapes, so that rows and columns
cannot be swapped unnoticed. A failing simulation leaves its waveform in ``waves/``.
"""

import pytest

from rvnpu.labs.benches import check_computes, command, gemm_computes, random_spads
from rvnpu.spec.config import EngineConfig


SHAPES = {"4x3": (4, 3), "2x5": (2, 5)}


def config_of(shape):
    rows, cols = SHAPES[shape]
    return EngineConfig(rows=rows, cols=cols, spad_depth=64, acc_depth=32, qp_depth=4,
                        mem_bytes=1 << 12)


@pytest.mark.parametrize("shape", SHAPES)
def test_ws_one_tile(rng, wave, shape):
    c = config_of(shape)
    spad_a, spad_b = random_spads(rng, c)
    cmd = command(c, steps=int(rng.integers(c.rows, 12)))
    check_computes(c, spad_a, spad_b, [cmd], wave=wave)


def test_ws_fewer_weight_rows_than_array_rows(rng, wave):
    c = config_of("4x3")
    spad_a, spad_b = random_spads(rng, c)
    cmds = [command(c, steps=5, k_valid=k, a_row=8 * k, b_row=4 * k, c_row=8 * k)
            for k in (1, 2, 3)]
    check_computes(c, spad_a, spad_b, cmds, wave=wave)


@pytest.mark.parametrize("shape", SHAPES)
def test_ws_gemm_back_to_back(rng, wave, shape):
    """The project's scheduler's commands for a whole GEMM: K chunks accumulate, weight
    tiles preload while the previous tile streams."""
    c = config_of(shape)
    spad_a, spad_b = random_spads(rng, c)
    m, n, k = (int(x) for x in rng.integers(3, 9, 3))
    cmds = gemm_computes(c, m, n, k, "ws")
    za, zb = (int(z) for z in rng.integers(-128, 128, 2))
    cmds = [dict(cmd, a_zero=za, b_zero=zb) for cmd in cmds]
    check_computes(c, spad_a, spad_b, cmds, wave=wave)


@pytest.mark.parametrize("shape", SHAPES)
def test_os_tiles(rng, wave, shape):
    c = config_of(shape)
    spad_a, spad_b = random_spads(rng, c)
    cmds = [command(c, dataflow=0, steps=int(rng.integers(1, 16)), a_row=0, b_row=0,
                    c_row=0),
            command(c, dataflow=0, steps=int(rng.integers(1, 16)), a_row=16, b_row=20,
                    c_row=8, accumulate=1)]
    check_computes(c, spad_a, spad_b, cmds, wave=wave)


def test_dataflow_switch_and_accumulate(rng, wave):
    c = config_of("4x3")
    spad_a, spad_b = random_spads(rng, c)
    cmds = [command(c, steps=6), command(c, dataflow=0, steps=9, c_row=0, accumulate=1),
            command(c, steps=3, a_row=20, b_row=12, c_row=1, accumulate=1)]
    check_computes(c, spad_a, spad_b, cmds, wave=wave)
